// /admin/calendar: a year's statutory holidays and swapped working days, one "YYYY-MM-DD name" a line;
// saving replaces the year (working-time limits count on it).
import { useEffect, useState } from 'preact/hooks';
import { when } from '../../i18n';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

interface Day { date: string; name: string }
interface Year { year: number; source: string | null; loadedBy: string | null; loadedAt: string | null; holidays: Day[]; workdays: Day[] }

const lines = (days: Day[]) => days.map((d) => `${d.date} ${d.name || ''}`.trim()).join('\n');
const days = (text: string) => text.split('\n').map((l) => l.trim()).filter(Boolean)
  .map((l) => { const [date, ...name] = l.split(/\s+/); return { date, name: name.join(' ') }; });

export function Calendar() {
  const [year, setYear] = useState(String(new Date().getFullYear()));
  const [shownYear, setShownYear] = useState(year);
  const data = useLoad<Year>(`/calendar/${shownYear}`);
  const [f, setF] = useState({ source: '', holidays: '', workdays: '' });
  const s = useSubmit();
  useEffect(() => {
    if (data.data) setF({ source: data.data.source || '', holidays: lines(data.data.holidays), workdays: lines(data.data.workdays) });
  }, [data.data]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await s.send(`/calendar/${shownYear}`, { method: 'PUT',
      json: { source: f.source, holidays: days(f.holidays), workdays: days(f.workdays) } });
    if (ok) data.reload();
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <section aria-labelledby="cal-title">
      <h1 id="cal-title">{ta('calendar')}</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setShownYear(year); }}>
        <div class="field"><label for="cal-year">{ta('year')}</label>
          <input id="cal-year" type="number" min={2000} max={2100} value={year} onInput={(e) => setYear(value(e))} /></div>
        <button type="submit">{ta('show')}</button>
      </form>
      {!data.data ? <Loading error={data.error} /> : (
        <form ref={s.root} class="admin-form" onSubmit={submit} noValidate>
          <p>{data.data.source ? ta('loadedBy', { by: data.data.loadedBy || '', at: when(data.data.loadedAt) }) : ta('noHolidays')}</p>
          <Field id="cal-source" name="source" label={ta('source')} errors={s.errors}>
            {(a) => <input {...a} value={f.source} onInput={set('source')} />}</Field>
          <Field id="cal-holidays" name="holidays" label={ta('holidays')} hint={ta('dayLines')} errors={s.errors}>
            {(a) => <textarea {...a} rows={10} value={f.holidays} onInput={set('holidays')} />}</Field>
          <Field id="cal-workdays" name="workdays" label={ta('workdays')} hint={ta('dayLines')} errors={s.errors}>
            {(a) => <textarea {...a} rows={4} value={f.workdays} onInput={set('workdays')} />}</Field>
          <Problem problem={s.problem} errors={s.errors} shown={['source', 'holidays', 'workdays']} />
          <button type="submit" class="primary" disabled={s.busy}>{ta('save')}</button>
        </form>
      )}
    </section>
  );
}
