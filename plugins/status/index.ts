import fp from 'fastify-plugin'

/** The status area, through the company's connection (session-pool's public face). */
export default fp(async () => {}, { name: 'status', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })
