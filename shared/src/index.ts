export * from './canonical-json.js';
export * from './decode.js';
export * from './errors.js';
export * from './jobs-lifecycle.js';
export * from './json-schema.js';
export * from './schemas/index.js';
export * from './signing.js';
export * from './topics.js';
