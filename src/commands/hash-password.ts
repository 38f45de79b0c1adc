/** `hash-password`: an scrypt hash for a broker user's password (format in src/broker/password.ts). */
import { DEFAULT_SCRYPT_PARAMS as DEFAULT_SCRYPT } from '../broker/password.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway hash-password [--cost N] [--json]  < password

Prints an scrypt hash for a broker user's password, to paste into the gateway config:
  scrypt$N$r$p$<salt base64>$<key base64>     (N=${DEFAULT_SCRYPT.N}, r=${DEFAULT_SCRYPT.r}, p=${DEFAULT_SCRYPT.p} by default)
The password is read from standard input (first line), or prompted for twice without echo in a terminal; it is never
taken from the command line, where other users could see it in the process list.
  --cost N   log2 of N, 10..20 (default ${Math.log2(DEFAULT_SCRYPT.N)}: ${(128 * DEFAULT_SCRYPT.N * DEFAULT_SCRYPT.r) / 2 ** 20} MiB per check)
  --json     {"hash": "..."}`;

export async function hashPasswordCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { cost: { type: 'string' }, json: { type: 'boolean' } });
    const cost = values.cost === undefined ? Math.log2(DEFAULT_SCRYPT.N) : Number(values.cost);
    if (!Number.isInteger(cost) || cost < 10 || cost > 20) throw new UsageError(`--cost: expected an integer 10..20, got ${JSON.stringify(values.cost)}`);
    const password = process.stdin.isTTY ? await promptTwice() : await firstLine(process.stdin);
    if (password.length === 0) throw new UsageError('hash-password: expected a non-empty password on standard input');
    const { hashPassword } = await import('../broker/password.js');
    const hash = await hashPassword(password, { ...DEFAULT_SCRYPT, N: 2 ** cost });
    process.stdout.write(values.json ? `${JSON.stringify({ hash })}\n` : `${hash}\n`);
    return 0;
  });
}

async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (chunks.reduce((n, c) => n + c.length, 0) > 4096) break;
  }
  return (Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '').slice(0, 1024);
}

async function promptTwice(): Promise<string> {
  const first = await promptHidden('password: ');
  const second = await promptHidden('again:    ');
  if (first !== second) throw new UsageError('hash-password: the two passwords differ');
  return first;
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const onData = (buf: Buffer): void => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') process.exit(130);
        value = ch === '\u007f' ? value.slice(0, -1) : value + ch;
      }
    };
    stdin.on('data', onData);
  });
}
