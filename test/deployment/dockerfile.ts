import { readFileSync } from 'node:fs';

/** One instruction of a Dockerfile: its name (upper case), its text, and the build stage it is in (0 = the first FROM). */
export interface Instruction {
  name: string;
  text: string;
  stage: number;
}

/** The instructions of a Dockerfile, continuation lines joined, comments dropped. */
export function readDockerfile(path: string): Instruction[] {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  let stage = -1;
  return lines.map((line) => {
    const name = line.split(/\s+/, 1)[0]!.toUpperCase();
    if (name === 'FROM') stage++;
    return { name, text: line.slice(name.length).trim(), stage };
  });
}

/** The JSON-array (exec) form of CMD, ENTRYPOINT or HEALTHCHECK … CMD; throws for the shell form. */
export function execForm(text: string): string[] {
  const array = text.slice(text.indexOf('['));
  const parsed = JSON.parse(array) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((w) => typeof w === 'string')) throw new Error(`not an exec form: ${text}`);
  return parsed as string[];
}
