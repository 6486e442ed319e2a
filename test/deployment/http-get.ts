import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET `url` (http or https with a client certificate), with a bearer token if given; rejects after 3 s. */
export function httpGet(url: string, options: { token?: string; tls?: { ca: Buffer; cert: Buffer; key: Buffer } } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
    const request = url.startsWith('https:') ? httpsRequest(url, { headers, ...options.tls, timeout: 3_000 }) : httpRequest(url, { headers, timeout: 3_000 });
    request.once('timeout', () => request.destroy(new Error(`GET ${url}: no answer within 3 s`)));
    request.once('error', reject);
    request.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
    request.end();
  });
}
