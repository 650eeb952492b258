import fp from 'fastify-plugin'

/** The profiles area, through the company's connection (session-pool's public face). */
export default fp(async () => {}, { name: 'profiles', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })
