// The one build: bundles src/ into ../api/console_assets (served by api/views/console.py).
// Reproducible: the same sources and lockfile give the same bytes (content-hashed names, no dates).
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const out = path.resolve('../api/console_assets');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'assets'), { recursive: true });

// Leaflet's attribution prefix links to its web site: the one address in its code (the rest are in
// comments, which minifying drops). The console names no other origin, so the link becomes plain
// text; the build fails if a new Leaflet words it differently, rather than ship the address.
const LEAFLET_LINK = '<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">';
const leafletOffline = {
  name: 'leaflet-offline',
  setup(build) {
    build.onLoad({ filter: /[\\/]leaflet[\\/]dist[\\/]leaflet-src(\.esm)?\.js$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      if (!src.includes(LEAFLET_LINK)) throw new Error(`${args.path}: Leaflet's attribution link changed; update build.mjs`);
      return { contents: src.replace(LEAFLET_LINK, '<span>').replace("'Leaflet</a>'", "'Leaflet</span>'"), loader: 'js' };
    });
  },
};

const common = {
  bundle: true, minify: true, target: ['es2020'], legalComments: 'none', charset: 'utf8',
  jsx: 'automatic', jsxImportSource: 'preact', logLevel: 'warning', define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [leafletOffline], loader: { '.png': 'dataurl' },  // Leaflet's CSS images (layers, marker) inline
};

const app = await esbuild.build({
  ...common, entryPoints: { app: 'src/main.tsx' }, outdir: path.join(out, 'assets'), entryNames: '[name]-[hash]',
  format: 'esm', metafile: true,
});
const built = Object.keys(app.metafile.outputs).map((f) => '/assets/' + path.basename(f)).sort();
const js = built.find((f) => f.endsWith('.js'));
const css = built.find((f) => f.endsWith('.css'));

for (const name of fs.readdirSync('public')) fs.copyFileSync(path.join('public', name), path.join(out, name));
const html = fs.readFileSync('public/index.html', 'utf8').replace('__JS__', js).replace('__CSS__', css);
fs.writeFileSync(path.join(out, 'index.html'), html);

const shell = ['/', '/manifest.webmanifest', '/icon.svg', '/icon-192.png', ...built];
const version = createHash('sha256').update(shell.join('\n') + html).digest('hex').slice(0, 12);
await esbuild.build({
  ...common, entryPoints: ['src/sw.ts'], outfile: path.join(out, 'sw.js'), format: 'iife',
  define: { ...common.define, __SHELL__: JSON.stringify(shell), __VERSION__: JSON.stringify(version) },
});

for (const f of fs.readdirSync(out, { recursive: true }).sort()) {
  const p = path.join(out, f);
  if (fs.statSync(p).isFile()) console.log(`${String(fs.statSync(p).size).padStart(8)}  ${f}`);
}
