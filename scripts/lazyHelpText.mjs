// An esbuild plugin for both bundles (scripts/bundle.mjs, scripts/build-binary.mjs). yargs measures its help text
// with string-width, whose modules make an Intl.Segmenter (ICU's break data) and compile a \p{RGI_Emoji} regular
// expression as they load: about 30 ms of CPU at every start (docs/performance.md, start-up), though only --help
// and a usage error's text need them, and only for text that is not plain ASCII. Here each is made at its first
// use instead. The pinned versions' lines are matched exactly: a string-width that no longer has them fails the
// build, so that an upgrade is looked at rather than silently slower or wrong.
import { readFile } from 'node:fs/promises';

const LAZY = [
  {
    eager: 'const segmenter = new Intl.Segmenter();',
    lazy: 'let segmenterMade;\nconst segmenter = { segment: (text) => (segmenterMade ??= new Intl.Segmenter()).segment(text) };',
    required: true,
  },
  {
    eager: 'const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;',
    lazy: 'let rgiEmojiMade;\nconst rgiEmojiRegex = { test: (text) => (rgiEmojiMade ??= /^\\p{RGI_Emoji}$/v).test(text) };',
    required: false,
  },
];

export const lazyHelpText = {
  name: 'lazy-help-text',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]string-width[\\/]index\.js$/ }, async ({ path }) => {
      let contents = await readFile(path, 'utf8');
      for (const { eager, lazy, required } of LAZY) {
        if (contents.includes(eager)) contents = contents.replace(eager, lazy);
        else if (required) throw new Error(`${path} no longer has \`${eager}\`: see scripts/lazyHelpText.mjs`);
      }
      return { contents, loader: 'js' };
    });
  },
};
