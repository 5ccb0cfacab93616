// 网格一张图: the tenant's grids (borders simplified by the server for the zoom, fetched for the view
// on every move) with open cases by stage (overdue in red), monitoring sources by state and the
// inspectors' latest check-ins over them. Base tiles only when the server is configured with them.
// Points are Leaflet markers with a divIcon (CSS only, no image): each can be reached with Tab and
// opened with Enter. Popups are built as DOM nodes, never from HTML strings of server data.
import * as L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, Me } from '../api';
import { Key, lang, t, when } from '../i18n';

type Feature = { type: 'Feature'; id: string; geometry: any; properties: Record<string, any> };
type Collection = { type: 'FeatureCollection'; features: Feature[]; truncated?: boolean; unplaced?: number };
type LayerName = 'grids' | 'cases' | 'sources' | 'checkins';

const LEVELS = ['district', 'town', 'unit'] as const;
const STAGES = ['review', 'dispatch', 'sign_for', 'handle', 'verify', 'deferred', 'waiting'] as const;
const SOURCE_STATES = ['online', 'offline', 'exceeding'] as const;
const LAYER_LABEL: Record<LayerName, Key> = {
  grids: 'gridsLayer', cases: 'casesLayer', sources: 'sourcesLayer', checkins: 'checkinsLayer',
};

/** The legend's stage of a case: escalations and approvals sit with the stage they belong to. */
function stageClass(stage: string): string {
  if (stage === 'escalate_sign') return 'sign_for';
  if (stage === 'escalate_handle' || stage === 'approve_extension' || stage === 'approve_return') return 'handle';
  if (stage === 'approve_deferral') return 'deferred';
  return (STAGES as readonly string[]).includes(stage) ? stage : 'waiting';
}

/** Which grids to draw at a zoom (the demo city's basic units are ~7 km across). */
function levelFor(zoom: number): string {
  return zoom < 9 ? 'district' : zoom < 11 ? 'town' : 'unit';
}

function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function link(href: string, text: string): HTMLElement {
  const a = el('a', text) as HTMLAnchorElement;
  a.href = href;
  return a;
}

function popup(title: string, lines: string[], href?: string, hrefText?: string): HTMLElement {
  const box = el('div', undefined, 'map-popup');
  box.append(el('strong', title));
  lines.forEach((line) => box.append(el('div', line)));
  if (href) box.append(link(href, hrefText || href));
  return box;
}

function addPin(group: L.LayerGroup, f: Feature, kind: string, classes: string, label: string,
                content: () => HTMLElement): void {
  const [lon, lat] = f.geometry.coordinates;
  const icon = L.divIcon({ className: `map-pin ${kind} ${classes}`, iconSize: [16, 16], html: '' });
  const marker = L.marker([lat, lon], { icon, keyboard: true, title: label, riseOnHover: true });
  marker.bindPopup(content);
  marker.on('add', () => {
    const node = marker.getElement();
    if (!node) return;
    node.setAttribute('aria-label', label);  // read out by screen readers; data-* lets tests find the pin
    node.dataset[kind] = f.id;
  });
  group.addLayer(marker);
}

function bboxOf(map: L.Map): string {
  const b = map.getBounds();
  const clamp = (v: number, lim: number) => Math.max(-lim, Math.min(lim, v));
  return [clamp(b.getWest(), 180), clamp(b.getSouth(), 90), clamp(b.getEast(), 180), clamp(b.getNorth(), 90)]
    .map((v) => v.toFixed(6)).join(',');
}

export function MapPage(props: { tenant: string; me: Me }) {
  const canvas = useRef<HTMLDivElement>(null);
  const mapRef = useRef<L.Map | null>(null);
  const groups = useRef<Record<LayerName, L.LayerGroup> | null>(null);
  const [shown, setShown] = useState<Record<LayerName, boolean>>({ grids: true, cases: true, sources: true, checkins: true });
  const [level, setLevel] = useState('');
  const [counts, setCounts] = useState<Record<LayerName, number>>({ grids: 0, cases: 0, sources: 0, checkins: 0 });
  const [notes, setNotes] = useState<{ truncated: boolean; unplaced: number }>({ truncated: false, unplaced: 0 });
  const [problem, setProblem] = useState('');
  const [loading, setLoading] = useState(true);
  const settings = useRef({ shown, level });
  settings.current = { shown, level };
  const tiles = props.me.map?.tilesUrl;

  const load = async () => {
    const map = mapRef.current;
    const g = groups.current;
    if (!map || !g) return;
    let bbox: string;
    try {
      bbox = bboxOf(map);
    } catch {
      return;  // no view yet: the first one (fitting the city) loads
    }
    const zoom = map.getZoom();
    const base = `tenant=${encodeURIComponent(props.tenant)}&bbox=${bbox}`;
    const want = settings.current;
    const lvl = want.level || levelFor(zoom);
    setLoading(true);
    setProblem('');
    try {
      const get = (name: LayerName, path: string) =>
        want.shown[name] ? api<Collection>(path) : Promise.resolve({ type: 'FeatureCollection', features: [] } as Collection);
      const [grids, cases, sources, checkins] = await Promise.all([
        get('grids', `/grids/geojson?${base}&zoom=${Math.round(zoom)}&level=${lvl}`),
        get('cases', `/map/cases?${base}`),
        get('sources', `/map/sources?${base}`),
        get('checkins', `/map/checkins?${base}`),
      ]);
      if (mapRef.current !== map) return;  // the page was left meanwhile
      drawGrids(g.grids, grids);
      drawCases(g.cases, cases);
      drawSources(g.sources, sources);
      drawCheckins(g.checkins, checkins);
      setCounts({ grids: grids.features.length, cases: cases.features.length, sources: sources.features.length,
        checkins: checkins.features.length });
      setNotes({ truncated: [grids, cases, sources, checkins].some((c) => c.truncated), unplaced: cases.unplaced || 0 });
    } catch (e: any) {
      setProblem(e.message || String(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    const map = L.map(canvas.current!, { keyboard: true, zoomControl: true, attributionControl: true,
      minZoom: 5, maxZoom: 18, zoomSnap: 1 });
    map.attributionControl.setPrefix('Leaflet');
    if (tiles) {
      L.tileLayer(tiles, { attribution: props.me.map?.tilesAttribution || '', subdomains: props.me.map?.tilesSubdomains || 'abc',
        maxZoom: 18, referrerPolicy: 'no-referrer' } as L.TileLayerOptions).addTo(map);
    }
    const g = { grids: L.layerGroup(), cases: L.layerGroup(), sources: L.layerGroup(), checkins: L.layerGroup() };
    Object.values(g).forEach((layer) => layer.addTo(map));
    groups.current = g;
    mapRef.current = map;
    const container = map.getContainer();
    container.setAttribute('role', 'application');
    container.setAttribute('aria-label', t('mapCanvas'));
    // a popup opening near the edge pans the map to show itself whole: reloading then would redraw
    // the layers and close it, so that one move keeps what is drawn
    let autoPanning = false;
    map.on('autopanstart', () => { autoPanning = true; });
    map.on('moveend', () => { if (autoPanning) autoPanning = false; else load(); });
    // the city's outline decides the first view; every later view is the user's
    api<Collection>(`/grids/geojson?tenant=${encodeURIComponent(props.tenant)}&level=city&zoom=8`).then((c) => {
      const bounds = L.geoJSON(c as any).getBounds();
      if (bounds.isValid()) map.fitBounds(bounds);
      else map.setView([34.6, 119.2], 9);
    }).catch((e) => { setProblem(e.message); map.setView([34.6, 119.2], 9); });
    return () => { mapRef.current = null; map.remove(); };
  }, [props.tenant]);

  useEffect(() => { load(); }, [shown, level]);
  useEffect(() => {  // popups are built when opened, in the language of the moment; labels are redrawn
    mapRef.current?.getContainer().setAttribute('aria-label', t('mapCanvas'));
    load();
  }, [lang()]);

  const toggle = (name: LayerName) => (e: Event) => setShown({ ...shown, [name]: (e.target as HTMLInputElement).checked });

  return (
    <section aria-labelledby="map-title" class="map-page">
      <h1 id="map-title">{t('mapTitle')}</h1>
      <div class="map-layout">
        <aside class="map-side card">
          <fieldset class="field">
            <legend>{t('layers')}</legend>
            {(Object.keys(LAYER_LABEL) as LayerName[]).map((name) => (
              <label class="choice" key={name}>
                <input type="checkbox" name={`layer-${name}`} checked={shown[name]} onChange={toggle(name)} />
                {t(LAYER_LABEL[name])} <span class="muted">({counts[name]})</span>
              </label>
            ))}
          </fieldset>
          <div class="field">
            <label for="map-level">{t('gridLevel')}</label>
            <select id="map-level" value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}>
              <option value="">{t('levelAuto')}</option>
              {LEVELS.map((l) => <option key={l} value={l}>{t(`level_${l}` as Key)}</option>)}
            </select>
          </div>
          <h2>{t('legend')}</h2>
          <ul class="legend" aria-label={t('legend')}>
            {STAGES.map((s) => <li key={s}><span class={`swatch map-pin case stage-${s}`} aria-hidden="true" />{t(`stage_${s}` as Key)}</li>)}
            <li><span class="swatch map-pin case stage-handle overdue" aria-hidden="true" />{t('overdueBadge')}</li>
            {SOURCE_STATES.map((s) => <li key={s}><span class={`swatch map-pin source src-${s}`} aria-hidden="true" />
              {t('sourcesLayer')}：{t(`src_${s}` as Key)}</li>)}
            <li><span class="swatch map-pin checkin" aria-hidden="true" />{t('checkinsLayer')}</li>
            <li><span class="swatch grid-swatch" aria-hidden="true" />{t('gridsLayer')}</li>
          </ul>
          <p class="muted" role="status" data-testid="map-status">
            {loading ? t('loading') : t('shown', { grids: counts.grids, cases: counts.cases, sources: counts.sources,
              checkins: counts.checkins })}
          </p>
          {!tiles && <p class="muted">{t('noBaseMap')}</p>}
          {notes.truncated && <p class="error">{t('truncated')}</p>}
          {notes.unplaced > 0 && <p class="muted">{t('unplaced', { n: notes.unplaced })}</p>}
          {problem && <p class="error" role="alert">{t('error', { msg: problem })}</p>}
        </aside>
        <div class="map-canvas" ref={canvas} data-testid="map" />
      </div>
    </section>
  );
}

function drawGrids(group: L.LayerGroup, c: Collection): void {
  group.clearLayers();
  group.addLayer(L.geoJSON(c as any, {
    style: (f) => ({ className: `grid grid-${f?.properties.level}`, weight: f?.properties.level === 'unit' ? 1 : 2,
      color: '#0b5d4b', fillColor: '#0b5d4b', fillOpacity: 0.04, opacity: 0.8 }),
    onEachFeature: (f, layer) => {
      const p = f.properties;
      layer.bindPopup(() => popup(p.name, [`${t(`level_${p.level}` as Key)} · ${p.code}`],
        `/cases?grid=${encodeURIComponent(p.code)}`, t('casesInGrid')));
    },
  }));
}

function drawCases(group: L.LayerGroup, c: Collection): void {
  group.clearLayers();
  for (const f of c.features) {
    const p = f.properties;
    const stage = stageClass(p.stage);
    const label = `${t('case')} ${p.caseId} · ${t(`stage_${stage}` as Key)}${p.overdue ? ` · ${t('overdueBadge')}` : ''}`;
    addPin(group, f, 'case', `stage-${stage}${p.overdue ? ' overdue' : ''}${p.urgent ? ' urgent' : ''}`, label, () =>
      popup(`${t('case')} ${p.caseId}`, [
        `${t(`stage_${stage}` as Key)}${p.overdue ? ` · ${t('overdueBadge')}` : ''}`,
        `${t('category')}：${p.category}`, `${t('grid')}：${p.grid}`, `${t('due')}：${when(p.due)}`,
      ], `/cases/${encodeURIComponent(p.caseId)}`, t('viewCase')));
  }
}

function drawSources(group: L.LayerGroup, c: Collection): void {
  group.clearLayers();
  for (const f of c.features) {
    const p = f.properties;
    const label = `${t('sourcesLayer')} ${p.name} · ${t(`src_${p.state}` as Key)}`;
    addPin(group, f, 'source', `src-${p.state}`, label, () =>
      popup(p.name, [`MN ${p.mn} · ${t(`src_${p.state}` as Key)}`, ...(p.enterprise ? [p.enterprise] : []),
        t('lastHeard', { at: when(p.lastSeenAt) }), `${t('grid')}：${p.grid || '—'}`],
      `/cases?grid=${encodeURIComponent(p.grid || '')}`, t('casesInGrid')));
  }
}

function drawCheckins(group: L.LayerGroup, c: Collection): void {
  group.clearLayers();
  for (const f of c.features) {
    const p = f.properties;
    const label = t('checkinBy', { who: p.inspector, at: when(p.at) });
    addPin(group, f, 'checkin', '', label, () =>
      popup(p.inspector, [label, `${t('grid')}：${p.grid}`], `/cases/${encodeURIComponent(p.caseId)}`, t('viewCase')));
  }
}
