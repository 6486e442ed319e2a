// The image's HEALTHCHECK: healthy when the node answers 200 on GET /readyz of its HTTP port
// (RINGLIMIT_HTTP_PORT, default 8080: serve --http-port). The node listens on the address it
// advertises (--host), so each of the container's own IPv4 addresses is tried; any 200 is
// enough. Exit 0: healthy; 1: not ready, or no answer within 2 s.
import { networkInterfaces } from 'node:os';

const port = Number(process.env.RINGLIMIT_HTTP_PORT ?? 8080);
const hosts = [...new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)))];
const ready = (host) =>
  fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
    (res) => res.status === 200,
    () => false,
  );
const answers = await Promise.all(hosts.map(ready));
process.exitCode = answers.includes(true) ? 0 : 1;
