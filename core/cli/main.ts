/**
 * The `tributary` command, loaded by its bin (tributary.cts, which sizes libuv's thread pool first). It catches SIGINT, SIGTERM and SIGHUP before it loads anything else (signals.ts):
 * the commands are imported only then, since an ES module's static imports are all loaded and parsed
 * before its first line runs (half a second of them), and a signal meanwhile would end the process
 * with 143 and no word (a SIGHUP, 129).
 */
import { catchSignals } from './signals.js';

catchSignals();
const { main } = await import('./commands.js');
process.exitCode = await main(process.argv.slice(2));
