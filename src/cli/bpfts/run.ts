/**
 * `bpfts run <lesson> [<iface>] [options]`: runs a lesson's loader
 * (src/loaders/<lesson>) in this process, with the loader's own arguments
 * and exit statuses. `bpfts run --help` lists the lessons, each with the
 * description its loader gives runLesson (read from the loader's file, so
 * there is no second list to keep).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from './common.js';

/** A lesson loader: its name, file and one-line description. */
export interface LessonEntry { lesson: string; file: string; description: string }

/** The folder of the loaders next to this module (src/loaders, or dist/loaders in the package). */
const LOADERS = new URL('../../loaders/', import.meta.url);
const EXT = extname(fileURLToPath(import.meta.url)); // .ts from the sources, .js compiled

/** The first `description: '...'` literal of a loader's source. */
export function descriptionOf(source: string): string {
  const m = /\bdescription:\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/.exec(source);
  return m ? m[2].replace(/\\(.)/g, '$1') : '';
}

/** Every lesson loader, by name. */
export function lessons(): LessonEntry[] {
  const dir = fileURLToPath(LOADERS);
  return readdirSync(dir).filter((f) => f.endsWith(EXT) && !f.endsWith('.d.ts')).sort().map((f) => {
    const file = `${dir}${f}`;
    return { lesson: f.slice(0, -EXT.length), file, description: descriptionOf(readFileSync(file, 'utf8')) };
  });
}

function lessonList(): string {
  const all = lessons();
  const w = Math.max(...all.map((l) => l.lesson.length));
  return `\nLessons (bpfts run <lesson> --help for a lesson's options):\n${all.map((l) => `  ${l.lesson.padEnd(w)}  ${l.description}`).join('\n')}\n`;
}

/** Adds `run`. */
export function registerRun(program: Command): void {
  program.command('run').description("run a lesson's loader: bpfts run <lesson> <iface> [options] (Ctrl-C detaches)")
    .argument('<lesson>', 'the lesson (the list below)')
    .argument('[args...]', "the loader's arguments and options: its interface, --mode, --duration...")
    .allowUnknownOption()
    .passThroughOptions()
    .helpOption('-h, --help', 'this list (after <lesson>: the lesson\'s own help)')
    .addHelpText('after', () => lessonList())
    .action(async (lesson: string, args: string[]) => {
      const entry = lessons().find((l) => l.lesson === lesson);
      if (!entry) throw new UsageError(`run: unknown lesson '${lesson}' (have: ${lessons().map((l) => l.lesson).join(', ')})`);
      // The loader parses process.argv and exits by itself (runLesson never returns).
      process.argv = [process.argv[0], entry.file, ...args];
      await import(pathToFileURL(entry.file).href);
    });
}
