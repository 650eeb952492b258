import fp from 'fastify-plugin'

/** The calls area, through the company's connection (session-pool's public face). */
export default fp(async () => {}, { name: 'calls', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })
