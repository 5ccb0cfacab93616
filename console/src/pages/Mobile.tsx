// The inspector's phone: my tasks; sign for, check in with the browser's position, photos made
// smaller in the browser, and the handling form. Writes go through the offline queue.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, hasRole, Me } from '../api';
import { TaskForm } from '../components/TaskForm';
import { t, when } from '../i18n';
import { categoryName, gridName, useNames } from '../names';
import { photoWrite, jsonWrite, write } from '../queue';
import { navigate } from '../router';
import { shrink } from '../photo';
import { rt } from './report_i18n';
import type { Task } from './TaskPage';

export function MyTasks(props: { tenant: string }) {
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [problem, setProblem] = useState('');
  const names = useNames(props.tenant);
  useEffect(() => {
    api<{ items: Task[] }>('/task?status=open&sort=due&limit=50').then((p) => setTasks(p.items))
      .catch((e) => setProblem(e.message));
  }, []);
  if (problem) return <p class="error" role="alert">{t('error', { msg: problem })}</p>;
  if (!tasks) return <p role="status">{t('loading')}</p>;
  const now = Date.now();
  return (
    <section aria-labelledby="my-title" class="mobile">
      <h1 id="my-title">{t('myTasks')}</h1>
      {hasRole('inspector') && <a class="button big" href="/m/report">{rt('reportProblem')}</a>}
      {tasks.length === 0 ? <p class="muted">{t('noTasks')}</p> : (
        <ul class="cards">
          {tasks.map((task) => {
            const late = !!task.due && new Date(task.due).getTime() < now;
            return (
              <li key={task.id} class={`card${late ? ' overdue' : ''}`}>
                <a href={`/m/tasks/${task.id}`} data-task={task.taskDefinitionKey}>
                  <strong>{task.name}</strong>
                  {late && <span class="badge late">{t('overdueBadge')}</span>}
                  <span class="meta">{gridName(names, task.candidateScope)} · {t('due')} {when(task.due)}</span>
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

/** What the phone needs of the task's case: what was reported and where. */
interface CaseFacts { id: string; tenant: string; category: string; grid: string; description: string | null;
  lon: number | null; lat: number | null }

interface Evidence { id: number; kind: string; lon: number | null; lat: number | null; size: number | null }

function position(): Promise<GeolocationPosition> {
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(resolve, reject,
    { enableHighAccuracy: true, timeout: 20_000, maximumAge: 0 })); // a check-in proves where one is now
}

export function MobileTask(props: { id: string; me: Me }) {
  const [task, setTask] = useState<Task | null>(null);
  const [vars, setVars] = useState<Record<string, unknown>>({});
  const [facts, setFacts] = useState<CaseFacts | null>(null);
  const [evidence, setEvidence] = useState<Evidence[]>([]);
  const [note, setNote] = useState('');
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  const path = `/task/${encodeURIComponent(props.id)}`;
  const reload = () => api<Evidence[]>(`${path}/evidence`).then(setEvidence).catch(() => {});
  useEffect(() => {
    api<Task>(path).then(setTask).catch((e) => setProblem(e.message));
    setFacts(null);
    api<Record<string, unknown>>(`${path}/variables`).then((v) => {
      setVars(v);
      if (typeof v.case_id === 'string') {  // the case says what was reported and where to go
        api<CaseFacts>(`/cases/${encodeURIComponent(v.case_id)}`).then(setFacts).catch(() => setFacts(null));
      }
    }).catch(() => setVars({}));
    reload();
  }, [props.id]);

  const act = async (f: () => Promise<string>) => {
    setBusy(true);
    setProblem('');
    setNote('');
    try {
      setNote(await f());
      reload();
    } catch (e) {
      setNote(''); // not "locating…" or "uploading…" beside the refusal
      setProblem(e instanceof ApiError  // each words once: a refusal's message often is its field's
        ? [...new Set([e.message, ...Object.values(e.fields).flat().map(String)])].join(' — ')
        : String((e as Error).message || e));
    } finally {
      setBusy(false);
    }
  };
  const signFor = () => act(async () => {
    const out = await write(jsonWrite(`${path}/complete`, { variables: {} }, task?.name || 'sign_for'));
    if (!out.queued) navigate('/m');
    return t(out.queued ? 'queued' : 'done');
  });
  const checkIn = () => act(async () => {
    setNote(t('locating'));
    let pos: GeolocationPosition;
    try {
      pos = await position();
    } catch (e) {
      throw new Error(t('geoFailed', { msg: (e as GeolocationPositionError).message }));
    }
    const { longitude: lon, latitude: lat, accuracy } = pos.coords;
    const out = await write(jsonWrite(`${path}/checkin`, { lon, lat, accuracyM: Math.min(accuracy, 10_000) }, t('checkIn')));
    return out.queued ? t('queued') : t('checkedIn', { lon: lon.toFixed(5), lat: lat.toFixed(5) });
  });
  const photo = (e: Event) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = '';
    if (!file) return;
    act(async () => {
      setNote(t('uploading'));
      const limit = Math.floor((props.me.maxPhotoBytes || 8 * 1024 * 1024) * 0.95);
      const small = await shrink(file, Math.min(limit, 2 * 1024 * 1024));
      const out = await write(await photoWrite(`${path}/photos`, small, 'site.jpg', t('takePhoto')));
      return out.queued ? t('queued') : t('uploaded', { kb: Math.round(small.size / 1024) });
    });
  };

  const names = useNames(facts?.tenant);
  if (!task) return problem ? <p class="error" role="alert">{problem}</p> : <p role="status">{t('loading')}</p>;
  const isSign = task.taskDefinitionKey === 'sign_for';
  const onSite = task.taskDefinitionKey === 'handle' || task.taskDefinitionKey === 'visit'; // a patrol visit: at its target
  const category = typeof vars.category === 'string' ? vars.category : facts?.category;
  const late = !!task.due && new Date(task.due).getTime() < Date.now();
  return (
    <section aria-labelledby="mt-title" class="mobile">
      <p><a href="/m">← {t('myTasks')}</a></p>
      <h1 id="mt-title">{task.name}</h1>
      <dl class="facts">
        {typeof vars.case_id === 'string' && <><dt>{t('case')}</dt><dd>{vars.case_id}</dd></>}
        {category && <><dt>{t('category')}</dt><dd>{categoryName(names, category)}</dd></>}
        {(facts?.description || typeof vars.description === 'string') && (
          <><dt>{t('description')}</dt><dd data-testid="task-description">{facts?.description || String(vars.description)}</dd></>)}
        {facts && <><dt>{t('location')}</dt><dd data-testid="task-location">{gridName(names, facts.grid)}
          {facts.lon !== null && facts.lat !== null
            ? ` (${facts.lon.toFixed(5)}, ${facts.lat.toFixed(5)})` : ` · ${t('noLocation')}`}</dd></>}
        {typeof vars.target_name === 'string' && <><dt>{t('patrolTarget')}</dt><dd>{vars.target_name}</dd></>}
        <dt>{t('due')}</dt><dd class={late ? 'late' : ''}>{when(task.due)}</dd>
      </dl>
      {note && <p class="note" role="status">{note}</p>}
      {problem && <p class="error" role="alert">{problem}</p>}
      {isSign && <button type="button" class="primary big" disabled={busy} onClick={signFor}>{t('signFor')}</button>}
      {onSite && (
        <div class="evidence" aria-label={t('evidence')}>
          <button type="button" class="big" disabled={busy} onClick={checkIn}>{t('checkIn')}</button>
          <label class="button big" for="photo-input">{t('takePhoto')}</label>
          <input id="photo-input" class="visually-hidden" type="file" accept="image/jpeg,image/png,image/*"
                 capture="environment" onChange={photo} disabled={busy} />
          <ul class="evidence-list">
            {evidence.map((e) => (
              <li key={e.id}>{e.kind === 'checkin' ? t('checkedIn', { lon: e.lon?.toFixed(5) ?? '', lat: e.lat?.toFixed(5) ?? '' })
                : t('uploaded', { kb: Math.round((e.size || 0) / 1024) })}</li>
            ))}
          </ul>
        </div>
      )}
      {!isSign && <TaskForm taskId={task.id} queued onDone={(queued) => queued ? setNote(t('queued')) : navigate('/m')} />}
    </section>
  );
}
