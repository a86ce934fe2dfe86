/** Rate limits: GCRA rate limits and concurrency slots, in memory or in Redis. See docs/rate-limits.md. */
export * from './errors.js';
export * from './headers.js';
export * from './limiter.js';
export * from './store.js';
export * from './tokens.js';
