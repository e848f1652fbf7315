// rpo's exit codes: 0 success, 1 a failure while running, 2 a usage or config error (nothing was
// run), 3 a non-finite loss stopped training, 130 interrupted. Its own module so the commands
// (lib/commands/*) need not import the command line that imports them.
export const EXIT = { ok: 0, failure: 1, usage: 2, nonFinite: 3, interrupted: 130 } as const;
