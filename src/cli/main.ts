import { runLimiterDemo } from './demo-limiter.js';

const USAGE = `usage: ringlimit <command>

commands:
  demo      show the limiter deciding live traffic (weighted users, algorithms, throttling)
  help      print this message
`;

export async function runCli(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case 'demo':
      return runLimiterDemo(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`ringlimit: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}
