import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { renderStatus } from '../../src/cli/status.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** An HTTP server on 127.0.0.1 answering every request with `status`. */
async function answering(status: number): Promise<string> {
  const server = createServer((_req, res) => res.writeHead(status).end('{}'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nothing listens on: one a server had a moment ago. */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

describe('ringlimit status, when the node cannot answer', () => {
  it('names the node, the URL and what failed (not only "fetch failed")', async () => {
    const dead = await deadAddress();
    await expect(renderStatus(dead, undefined, 100)).rejects.toThrow(
      new RegExp(`^cannot read the cluster from node ${dead}: GET http://${dead}/v1/cluster: ECONNREFUSED, connection refused: nothing listens there`),
    );
  });

  it('says that a token is needed on 401, and what answered otherwise', async () => {
    const guarded = await answering(401);
    await expect(renderStatus(guarded, undefined, 100)).rejects.toThrow(`cannot read the cluster from node ${guarded}: GET http://${guarded}/v1/cluster: HTTP 401 (the node asks for an API token: --token)`);
    const other = await answering(404);
    await expect(renderStatus(other, undefined, 100)).rejects.toThrow('HTTP 404 (not a ringlimit HTTP port?)');
  });
});
