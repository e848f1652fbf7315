// Ctrl-C for the commands that stop cleanly (train, rationales, compare): the first SIGINT or
// SIGTERM asks the work to stop (an AbortSignal it polls: after the step or the requests in
// flight), so what is done is kept and the same command resumes; a second quits at once.
import { EXIT } from '../exit.js';

export interface Interrupt {
  /** Aborted by the first signal. */
  readonly signal: AbortSignal;
  /** Stops listening (the process's default handling again). */
  release(): void;
}

export interface InterruptMessages {
  /** Printed at the first signal, before the signal is aborted. */
  first(sig: NodeJS.Signals): void;
  /** Printed at the second, before the process exits with EXIT.interrupted. */
  again?(sig: NodeJS.Signals): void;
}

/** Listens for SIGINT and SIGTERM until release(). */
export function listenForInterrupt(messages: InterruptMessages): Interrupt {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      messages.again?.(sig);
      process.exit(EXIT.interrupted);
    }
    messages.first(sig);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
