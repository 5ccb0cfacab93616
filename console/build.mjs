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

// Web addresses in the diagram code that are neither namespaces nor the watermark: diagram-js names GitHub
// issues in three developer warnings, and bpmn-js's SVG export (unused here) writes its web address into a
// comment. None is ever fetched; the console names no other origin, so the build shortens them. The bpmn.io
// watermark is left exactly as bpmn-js draws it: its licence forbids changing it (see tests/api/test_console.py).
const SVG_EXPORT_NOTE = '<!-- created with bpmn-js / http://bpmn.io -->';
const diagramAddresses = {
  name: 'diagram-addresses',
  setup(build) {
    build.onLoad({ filter: /[\\/]diagram-js[\\/]lib[\\/].*\.js$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      if (!src.includes('https://github.com/bpmn-io/')) return undefined;
      return { contents: src.replace(/https:\/\/github\.com\/bpmn-io\/diagram-js\/(issues|pull)\/(\d+)/g, 'diagram-js $1 #$2'), loader: 'js' };
    });
    build.onLoad({ filter: /[\\/]bpmn-js[\\/]lib[\\/]BaseViewer\.js$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      if (!src.includes(SVG_EXPORT_NOTE)) throw new Error(`${args.path}: the SVG export's note changed; update build.mjs`);
      return { contents: src.replace(SVG_EXPORT_NOTE, '<!-- created with bpmn-js -->'), loader: 'js' };
    });
  },
};

// bpmn-font offers its icon font in five formats; every browser the console supports reads woff2, and the
// older formats carry the font tool's web address in their metadata. The build keeps woff2 only.
const bpmnFontWoff2 = {
  name: 'bpmn-font-woff2',
  setup(build) {
    build.onLoad({ filter: /[\\/]bpmn-font[\\/]css[\\/]bpmn\.css$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      const woff2 = src.match(/url\('(\.\.\/font\/bpmn\.woff2\?\d+)'\)/);
      const face = /src: url\('\.\.\/font\/bpmn\.eot\?\d+'\);\s*src:[^;]*;/;
      if (!woff2 || !face.test(src)) throw new Error(`${args.path}: bpmn-font's @font-face changed; update build.mjs`);
      return { contents: src.replace(face, `src: url('${woff2[1]}') format('woff2');`), loader: 'css' };
    });
  },
};

// The diagram bundle (bpmn-js with its CSS and icon font) is an entry of its own, loaded by the models
// pages only: the app is told its file names, and neither 首页's first load nor the offline shell carries it.
const diagram = await esbuild.build({
  ...common, entryPoints: { modeler: 'src/modeler/diagram.ts' }, outdir: path.join(out, 'assets'),
  entryNames: '[name]-[hash]', assetNames: '[name]-[hash]', format: 'esm', metafile: true,
  plugins: [...(common.plugins || []), diagramAddresses, bpmnFontWoff2], loader: { ...common.loader, '.woff2': 'file' },
});
const diagramFiles = Object.keys(diagram.metafile.outputs).map((f) => '/assets/' + path.basename(f));
const MODELER = { js: diagramFiles.find((f) => f.endsWith('.js')), css: diagramFiles.find((f) => f.endsWith('.css')) };

// Pages imported with import() (the process models) become chunks of their own; what the app imports
// statically (its shared chunks) is the shell: linked by the page and cached by the service worker.
const app = await esbuild.build({
  ...common, entryPoints: { app: 'src/main.tsx' }, outdir: path.join(out, 'assets'), entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]', splitting: true, format: 'esm', metafile: true,
  define: { ...common.define, __MODELER__: JSON.stringify(MODELER) },
});
const outputs = app.metafile.outputs;
const entry = Object.keys(outputs).find((f) => outputs[f].entryPoint === 'src/main.tsx');
const statically = (f, seen = new Set()) => {
  if (!seen.has(f)) {
    seen.add(f);
    for (const i of outputs[f].imports) if (i.kind === 'import-statement' && outputs[i.path]) statically(i.path, seen);
  }
  return seen;
};
const asset = (f) => '/assets/' + path.basename(f);
const js = asset(entry);
const css = asset(outputs[entry].cssBundle);
const built = [...statically(entry)].map(asset).concat(css).sort();

for (const name of fs.readdirSync('public')) fs.copyFileSync(path.join('public', name), path.join(out, name));
// The app's static chunks are fetched beside it, not after it has been parsed.
const preload = built.filter((f) => f.endsWith('.js') && f !== js).map((f) => `<link rel="modulepreload" href="${f}">\n`).join('');
const html = fs.readFileSync('public/index.html', 'utf8').replace('__JS__', js).replace('__CSS__', css)
  .replace('<script type="module"', `${preload}<script type="module"`);
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
