import fp from 'fastify-plugin'

/** The chats area, through the company's connection (session-pool's public face). */
export default fp(async () => {}, { name: 'chats', dependencies: ['config', 'bus', 'phone', 'ownership', 'session-pool'] })
