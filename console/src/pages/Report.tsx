// 上报问题: an inspector reports a problem found on patrol — the position from the browser (editable,
// and to be typed in when it cannot be had), a category, a description and 1–4 photos made smaller in
// the browser. Sent as one multipart write through the offline queue, whose Idempotency-Key makes a
// replay file one case.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, Me } from '../api';
import { shrink } from '../photo';
import { t } from '../i18n';
import { formWrite, write } from '../queue';
import { rt } from './report_i18n';

const MAX_PHOTOS = 4;
type FieldErrors = Record<string, string>;
interface Category { code: string; name: string }
interface Shot { blob: Blob; url: string }
interface Filed { id: string; outcome: string }

function locate(): Promise<GeolocationPosition> {
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(resolve, reject,
    { enableHighAccuracy: true, timeout: 20_000, maximumAge: 30_000 }));
}

function Err(props: { id: string; errors: FieldErrors; name: string }) {
  const msg = props.errors[props.name];
  return msg ? <span id={props.id} class="field-error">{msg}</span> : null;
}

export function ReportProblem(props: { me: Me; tenant: string }) {
  const [categories, setCategories] = useState<Category[]>([]);
  const [lon, setLon] = useState('');
  const [lat, setLat] = useState('');
  const [where, setWhere] = useState('');
  const [category, setCategory] = useState('');
  const [description, setDescription] = useState('');
  const [shots, setShots] = useState<Shot[]>([]);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [problem, setProblem] = useState('');
  const [note, setNote] = useState('');
  const [filed, setFiled] = useState<Filed | null>(null);
  const [busy, setBusy] = useState(false);

  const findMe = () => {
    setWhere('…');
    locate().then((p) => {
      setLon(p.coords.longitude.toFixed(6));
      setLat(p.coords.latitude.toFixed(6));
      setWhere(rt('located', { m: Math.round(p.coords.accuracy) }));
    }).catch((e: GeolocationPositionError) => setWhere(rt('locateFailed', { msg: e.message || String(e.code) })));
  };
  useEffect(() => {
    if (!props.tenant) return;
    api<Category[]>(`/categories?tenant=${encodeURIComponent(props.tenant)}`).then(setCategories)
      .catch((e) => setProblem(e.message));
  }, [props.tenant]);
  useEffect(findMe, []);
  useEffect(() => () => shots.forEach((s) => URL.revokeObjectURL(s.url)), []);

  const addPhotos = async (e: Event) => {
    const input = e.target as HTMLInputElement;
    const files = Array.from(input.files || []);
    input.value = '';
    if (shots.length + files.length > MAX_PHOTOS) {
      setErrors({ ...errors, photos: rt('tooMany') });
      return;
    }
    setBusy(true);
    setNote(rt('shrinking'));
    try {
      const limit = Math.floor((props.me.maxPhotoBytes || 8 * 1024 * 1024) * 0.95);
      const made: Shot[] = [];
      for (const f of files) {
        const blob = await shrink(f, Math.min(limit, 2 * 1024 * 1024));
        made.push({ blob, url: URL.createObjectURL(blob) });
      }
      setShots([...shots, ...made]);
      const { photos: _gone, ...rest } = errors;
      setErrors(rest);
      setNote('');
    } catch (err) {
      setErrors({ ...errors, photos: String((err as Error).message || err) });
      setNote('');
    } finally {
      setBusy(false);
    }
  };
  const remove = (i: number) => {
    URL.revokeObjectURL(shots[i].url);
    setShots(shots.filter((_, j) => j !== i));
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setProblem('');
    setNote('');
    if (!shots.length) {
      setErrors({ photos: rt('needPhoto') });
      return;
    }
    setErrors({});
    setBusy(true);
    setNote(rt('sending'));
    try {
      const w = await formWrite('/reports', { tenant: props.tenant, category, lon, lat, description },
        shots.map((s, i) => ({ field: 'photos', blob: s.blob, name: `patrol-${i + 1}.jpg` })), rt('reportProblem'));
      const out = await write(w);
      if (out.queued) {
        setNote(rt('queuedReport'));
      } else {
        const body = await out.response!.json();
        setFiled({ id: body.id, outcome: body.outcome });
        setNote(rt(body.outcome === 'filed' ? 'filed' : body.outcome === 'occurrence' ? 'joined' : 'repeat', { id: body.id }));
      }
      shots.forEach((s) => URL.revokeObjectURL(s.url));
      setShots([]);
      setDescription('');
    } catch (err) {
      setNote('');
      if (err instanceof ApiError) {
        const found: FieldErrors = {};
        for (const [k, v] of Object.entries(err.fields)) found[k] = Array.isArray(v) ? v.join(' ') : String(v);
        setErrors(found);
        setProblem(Object.keys(found).length ? `${rt('fixFields')}: ${err.message}` : err.message);
      } else {
        setProblem(String((err as Error).message || err));
      }
    } finally {
      setBusy(false);
    }
  };

  const invalid = (name: string) => (errors[name] ? { 'aria-invalid': true, 'aria-describedby': `err-${name}` } : {});
  return (
    <section aria-labelledby="report-title" class="mobile report">
      <p><a href="/m">← {t('myTasks')}</a></p>
      <h1 id="report-title">{rt('reportProblem')}</h1>
      <p class="muted">{rt('reportIntro')}</p>
      {note && <p class="note" role="status">{note}{filed && <> · <a href={`/cases/${encodeURIComponent(filed.id)}`}>{rt('viewCase')}</a></>}</p>}
      {problem && <p class="error" role="alert">{problem}</p>}
      <form class="report-form" onSubmit={submit} noValidate>
        <fieldset>
          <legend>{rt('position')}</legend>
          <p class="muted" data-testid="where">{where}</p>
          <label for="r-lon">{rt('lon')}</label>
          <input id="r-lon" name="lon" inputMode="decimal" value={lon} required {...invalid('lon')}
                 onInput={(e) => setLon((e.target as HTMLInputElement).value)} />
          <Err id="err-lon" errors={errors} name="lon" />
          <label for="r-lat">{rt('lat')}</label>
          <input id="r-lat" name="lat" inputMode="decimal" value={lat} required {...invalid('lat')}
                 onInput={(e) => setLat((e.target as HTMLInputElement).value)} />
          <Err id="err-lat" errors={errors} name="lat" />
          <button type="button" onClick={findMe} disabled={busy}>{rt('locateAgain')}</button>
        </fieldset>
        <label for="r-category">{rt('category')}</label>
        <select id="r-category" name="category" value={category} required {...invalid('category')}
                onChange={(e) => setCategory((e.target as HTMLSelectElement).value)}>
          <option value="">{rt('chooseCategory')}</option>
          {categories.map((c) => <option key={c.code} value={c.code}>{c.name}</option>)}
        </select>
        <Err id="err-category" errors={errors} name="category" />
        <label for="r-description">{rt('description')}</label>
        <textarea id="r-description" name="description" rows={3} maxLength={2000} value={description} required
                  {...invalid('description')} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} />
        <Err id="err-description" errors={errors} name="description" />
        <fieldset {...invalid('photos')}>
          <legend>{rt('photos')}</legend>
          <ul class="report-photos">
            {shots.map((s, i) => (
              <li key={s.url}>
                <img src={s.url} alt={rt('photoReady', { n: i + 1, kb: Math.round(s.blob.size / 1024) })} />
                <span>{rt('photoReady', { n: i + 1, kb: Math.round(s.blob.size / 1024) })}</span>
                <button type="button" onClick={() => remove(i)} disabled={busy}>{rt('removePhoto', { n: i + 1 })}</button>
              </li>
            ))}
          </ul>
          {shots.length < MAX_PHOTOS && <>
            <label class="button big" for="report-photo-input">{rt('addPhoto')}</label>
            <input id="report-photo-input" class="visually-hidden" type="file" multiple
                   accept="image/jpeg,image/png,image/*" capture="environment" onChange={addPhotos} disabled={busy} />
          </>}
          <Err id="err-photos" errors={errors} name="photos" />
        </fieldset>
        <button type="submit" class="primary big" disabled={busy}>{rt('submitReport')}</button>
      </form>
    </section>
  );
}
