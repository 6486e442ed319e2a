import { spawnSync } from 'node:child_process';

/** A Python with grpcio, and protoc with the gRPC Python plugin (what examples/python needs), or why not. */
export function pythonWithGrpc(): { python: string } | { missing: string } {
  const pythons = ['python3', '/usr/bin/python3'].filter((p) => spawnSync(p, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);
  const protoc = spawnSync('protoc', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('which', ['grpc_python_plugin'], { stdio: 'ignore' }).status === 0;
  const tools = pythons.find((p) => spawnSync(p, ['-c', 'import grpc_tools'], { stdio: 'ignore' }).status === 0);
  if (pythons.length > 0 && protoc) return { python: pythons[0]! };
  if (tools !== undefined) return { python: tools };
  return { missing: 'python3 with grpcio, and protoc with grpc_python_plugin (Debian: apt-get install python3-grpcio protobuf-compiler protobuf-compiler-grpc; .ci/run installs them)' };
}

/**
 * Whether a test file that needs Python's grpcio skips: only outside CI, saying why (CI
 * installs them, so there a missing one fails the test instead).
 */
export function skipWithoutPython(found: { python: string } | { missing: string }, file: string): boolean {
  const skip = 'missing' in found && process.env.CI === undefined;
  if (skip) console.warn(`${file} skipped: needs ${(found as { missing: string }).missing}`);
  return skip;
}
