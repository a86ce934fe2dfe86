export type * from './request.js';
export type * from './response.js';
export type * from './stream-part.js';
export type * from './usage.js';
export type * from './finish-reason.js';
export { GatewayError } from './errors.js';
