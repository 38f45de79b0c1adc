/** `simulate`: ~30 realistic devices publishing to a broker, obeying commands on devices/<id>/set. */
import { createLogger } from '../log.js';
import { DeviceSimulator } from '../sim/simulator.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway simulate [--url mqtt://127.0.0.1:1883] [--rate N] [--seed N]

Runs ~30 simulated devices (lights, plugs, thermostats, motion, door and leak sensors) on the native topic convention:
meta retained on devices/<id>/meta, state on devices/<id>/state; obeys devices/<id>/set. Stops on Ctrl-C.
  --rate N   state reports per second across the home (default 3)
  --seed N   random seed (default 42)`;

export async function simulateCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { url: { type: 'string' }, rate: { type: 'string' }, seed: { type: 'string' } });
    const rate = values.rate === undefined ? 3 : Number(values.rate);
    if (!(rate > 0 && rate <= 10_000)) throw new UsageError(`--rate: expected a number in (0, 10000], got ${JSON.stringify(values.rate)}`);
    const seed = values.seed === undefined ? 42 : Number(values.seed);
    if (!Number.isInteger(seed)) throw new UsageError(`--seed: expected an integer, got ${JSON.stringify(values.seed)}`);
    const logger = createLogger({ name: 'simulator' });
    const sim = new DeviceSimulator({ url: values.url ?? 'mqtt://127.0.0.1:1883', logger, messagesPerSecond: rate, seed });
    await sim.start();
    logger.info({ devices: sim.devices.length, rate }, 'simulating devices; Ctrl-C to stop');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await sim.stop();
    logger.info(sim.stats, 'simulator stopped');
    return 0;
  });
}
