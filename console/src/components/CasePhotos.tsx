// A case's photos — those it was reported with and its tasks' on-site photos — as thumbnails that
// open full size in a dialog. Read with the bearer token (GET /cases/{id}/photos/{eid}/file).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, imageUrl } from '../api';
import { t, when } from '../i18n';
import { rt } from '../pages/report_i18n';

interface Photo { id: number; task: string | null; taskName: string | null; createdBy: string; created: string; url?: string }

export function CasePhotos(props: { caseId: string; heading?: 'h2' | 'h3' }) {
  const [photos, setPhotos] = useState<Photo[] | null>(null);
  const [big, setBig] = useState<Photo | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    let urls: string[] = [];
    let alive = true;
    const base = `/cases/${encodeURIComponent(props.caseId)}/photos`;
    (async () => {
      const list = await api<Photo[]>(base);
      const found: Photo[] = [];
      for (const p of list) {
        const url = await imageUrl(`${base}/${p.id}/file`);
        urls.push(url);
        found.push({ ...p, url });
      }
      if (alive) setPhotos(found);
    })().catch(() => alive && setPhotos([]));
    return () => { alive = false; urls.forEach((u) => URL.revokeObjectURL(u)); urls = []; };
  }, [props.caseId]);
  useEffect(() => {
    if (big) dialog.current?.showModal();
    else dialog.current?.close();
  }, [big]);

  const Heading = props.heading || 'h2';
  const name = (p: Photo) => p.taskName || rt('reportPhoto');
  return (
    <>
      <Heading>{t('photos')}</Heading>
      {photos === null ? <p role="status">{t('loading')}</p> : photos.length === 0 ? <p class="muted">{t('noPhotos')}</p> : (
        <ul class="photos">
          {photos.map((p, i) => (
            <li key={p.id} data-task={p.task || 'report'}>
              <button type="button" class="thumb" onClick={() => setBig(p)} aria-label={rt('photoOf', { n: i + 1, task: name(p) })}>
                <img src={p.url} alt={rt('photoOf', { n: i + 1, task: name(p) })} />
              </button>
              <span class="meta">{name(p)} · {p.createdBy} · {when(p.created)}</span>
            </li>
          ))}
        </ul>
      )}
      <dialog ref={dialog} class="photo-dialog" onClose={() => setBig(null)} aria-label={t('photos')}>
        {big && <img src={big.url} alt={name(big)} class="full" />}
        <form method="dialog"><button type="submit" autoFocus>{t('close')}</button></form>
      </dialog>
    </>
  );
}
