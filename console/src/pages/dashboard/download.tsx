// Export buttons: the file is fetched with the caller's token (a plain link cannot send it) and handed to
// the browser as a download under the name the server gives in Content-Disposition.
import { useState } from 'preact/hooks';
import { request } from '../../api';
import { lang } from '../../i18n';
import { td } from './i18n';

export async function download(path: string): Promise<string> {
  const r = await request(path);
  const name = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '')?.[1] || 'export';
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();  // detached: the click does not bubble to the router, which would take it for navigation
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return name;
}

/** CSV and XLSX buttons for `path` (a JSON endpoint's path and query, without format). */
export function ExportButtons(props: { path: string; what: string }) {
  const [note, setNote] = useState('');
  const go = (format: 'csv' | 'xlsx') => {
    const sep = props.path.includes('?') ? '&' : '?';
    download(`${props.path}${sep}format=${format}&lang=${lang() === 'en' ? 'en' : 'zh'}`)
      .then((file) => setNote(td('exported', { file })), (e) => setNote(String(e.message || e)));
  };
  return (
    <span class="exports">
      <button type="button" onClick={() => go('csv')} aria-label={`${td('exportCsv')}: ${props.what}`}>{td('exportCsv')}</button>{' '}
      <button type="button" onClick={() => go('xlsx')} aria-label={`${td('exportXlsx')}: ${props.what}`}>{td('exportXlsx')}</button>
      {note && <span class="muted" role="status"> {note}</span>}
    </span>
  );
}
