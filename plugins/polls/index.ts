import fp from 'fastify-plugin'

/** The polls area, through the company's connection (session-pool's public face). */
export default fp(async () => {}, { name: 'polls', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })
