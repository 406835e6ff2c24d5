export * from './tables.js';
export * from './keys.js';
export { idPartition } from './idPartition.js';
export * from './owners.js';
