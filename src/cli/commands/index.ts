/**
 * The commands that read the database, with the logger and the progress display, as one module for the command
 * line's handlers to import: the bundle then puts their code in a few large chunks rather than in a score of small
 * ones shared between the commands, and each chunk costs a start Node's module loading (docs/performance.md,
 * start-up). `init` stays apart: it needs none of it.
 */
export { checkCommand } from './check.js';
export { manifestCommand } from './manifest.js';
export { planCommand } from './plan.js';
export { pruneCommand } from './prune.js';
export { runCommand } from './run.js';
export { verifyCommand } from './verify.js';
export { createLogger } from '../logger.js';
export { progressAndLogger } from '../progress.js';
