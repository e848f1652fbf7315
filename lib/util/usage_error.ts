// A usage error outside the config layer (a flag's value, an output path): the CLI prints its
// message and exits with the usage code (2), nothing having been run. Config keys and overrides
// raise ConfigError (lib/config/errors.ts), which exits 2 the same way. The commands' own usage
// errors (rationales, launch) derive from it.
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}
