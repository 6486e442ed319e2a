// The image's HEALTHCHECK: healthy when the node answers 200 on GET /readyz of its HTTP port
// (RINGLIMIT_HTTP_PORT, default 8080: serve --http-port). The node listens on the address it
// advertises (--host), so each of the container's own IPv4 addresses is tried, over HTTP and
// over HTTPS (with --tls-*: /readyz needs no client certificate); any 200 is enough. The
// check sends nothing secret and asks its own container, so it does not verify the node's
// certificate. Exit 0: healthy; 1: not ready, or no answer within 2 s.
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { networkInterfaces } from 'node:os';

const port = Number(process.env.RINGLIMIT_HTTP_PORT ?? 8080);
const hosts = [...new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address)))];
const ready = (get, host) =>
  new Promise((resolve) => {
    const request = get({ host, port, path: '/readyz', rejectUnauthorized: false, signal: AbortSignal.timeout(2_000) }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    request.once('error', () => resolve(false));
  });
const answers = await Promise.all(hosts.flatMap((host) => [ready(httpGet, host), ready(httpsGet, host)]));
process.exitCode = answers.includes(true) ? 0 : 1;
