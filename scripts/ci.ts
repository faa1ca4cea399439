/**
 * Whether this process runs in CI, where a test that cannot run (a Kafka test without a broker) must
 * fail the run rather than skip and let it pass. CI systems set `CI` in different ways (`true`, `1`,
 * `yes`, a provider's name), so any value counts except unset, empty, `false` or `0` (any case):
 * those say "not CI", as a developer may export `CI=false` to turn it off. `.ci/run` sets `CI=true`.
 */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}
