/**
 * A command left awaiting a promise that nothing can settle any more (say, a read on a connection that died without
 * a word) would otherwise end silently once Node has nothing left to do: exit 0 from bin/mastosync.js and the single
 * executable, which both wait for main() with .then (exit 13 under a top-level await). For a cron run that is a run that
 * vanished; make it one line and exit 1.
 */
import { EXIT, type Output } from './exit.js';

/** Watches until the returned function is called; `command` names what was running, for the line. */
export function guardUnsettled(out: Output, command: string): () => void {
  const emptied = () => {
    process.off('beforeExit', emptied);
    out.stderr(
      `mastosync: stopped: internal error: the run ended with work pending (${command} was still waiting, with nothing left that could answer): please report this bug`,
    );
    process.exitCode = EXIT.failures;
  };
  process.on('beforeExit', emptied);
  return () => process.off('beforeExit', emptied);
}
