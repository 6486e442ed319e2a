/** ringlimit/redis: the limiter's state in Redis or Valkey. `createLimiter({ store: redisStore({ client }) })`. */
export { RedisStore, redisStore, redisStoreDefaults, type RedisScriptClient, type RedisStoreOptions } from './redis-store.js';
export { keySlot } from './slot.js';
