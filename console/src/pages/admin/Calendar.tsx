// /admin/calendar: a year's statutory holidays and swapped working days, one "YYYY-MM-DD name" a line;
// saving replaces the year (working-time limits count on it).
import { useEffect, useRef, useState } from 'preact/hooks';
import { fieldMessages } from '../../errors_i18n';
import { lang, when } from '../../i18n';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

interface Day { date: string; name: string }
interface Year { year: number; source: string | null; loadedBy: string | null; loadedAt: string | null; holidays: Day[]; workdays: Day[] }

const lines = (days: Day[]) => days.map((d) => `${d.date} ${d.name || ''}`.trim()).join('\n');
/** The days of a textarea and, for each, the line it is on (1-based, blank lines counted). */
const parse = (text: string) => text.split('\n').map((l, i) => ({ text: l.trim(), line: i + 1 }))
  .filter((l) => l.text)
  .map((l) => { const [date, ...name] = l.text.split(/\s+/); return { day: { date, name: name.join(' ') }, line: l.line }; });
const days = (text: string) => parse(text).map((d) => d.day);

export function Calendar() {
  const [year, setYear] = useState(String(new Date().getFullYear()));
  const [shownYear, setShownYear] = useState(year);
  const data = useLoad<Year>(`/calendar/${shownYear}`);
  const [f, setF] = useState({ source: '', holidays: '', workdays: '' });
  const s = useSubmit();
  const sent = useRef({ holidays: [] as number[], workdays: [] as number[] });  // each sent day's textarea line
  useEffect(() => {
    if (data.data) setF({ source: data.data.source || '', holidays: lines(data.data.holidays), workdays: lines(data.data.workdays) });
  }, [data.data]);
  const submit = async (e: Event) => {
    e.preventDefault();
    sent.current = { holidays: parse(f.holidays).map((d) => d.line), workdays: parse(f.workdays).map((d) => d.line) };
    const ok = await s.send(`/calendar/${shownYear}`, { method: 'PUT',
      json: { source: f.source, holidays: days(f.holidays), workdays: days(f.workdays) } });
    if (ok) data.reload();
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  // a refused day is named by the textarea line it is on, not its index in the list sent
  const byLine = (k: 'holidays' | 'workdays') => {
    const lineOf = (i: number) => sent.current[k][i] ?? i + 1;
    return s.nested[k] === undefined ? {} : { [k]: [fieldMessages(s.nested[k], 'line', lineOf).join(lang() === 'en' ? '; ' : '；')] };
  };
  const errors = { ...s.errors, ...byLine('holidays'), ...byLine('workdays') };
  return (
    <section aria-labelledby="cal-title">
      <h1 id="cal-title">{ta('calendar')}</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setShownYear(year); }}>
        <div class="field"><label for="cal-year">{ta('year')}</label>
          <input id="cal-year" type="number" min={2000} max={2100} value={year} onInput={(e) => setYear(value(e))} /></div>
        <button type="submit">{ta('show')}</button>
      </form>
      {!data.data || !data.current ? <Loading error={data.error} /> : (
        <form ref={s.root} class="admin-form" data-year={data.data.year} onSubmit={submit} noValidate>
          <p>{data.data.source ? ta('loadedBy', { by: data.data.loadedBy || '', at: when(data.data.loadedAt) }) : ta('noHolidays')}</p>
          <Field id="cal-source" name="source" label={ta('source')} errors={errors}>
            {(a) => <input {...a} value={f.source} onInput={set('source')} />}</Field>
          <Field id="cal-holidays" name="holidays" label={ta('holidays')} hint={ta('dayLines')} errors={errors}>
            {(a) => <textarea {...a} rows={10} value={f.holidays} onInput={set('holidays')} />}</Field>
          <Field id="cal-workdays" name="workdays" label={ta('workdays')} hint={ta('dayLines')} errors={errors}>
            {(a) => <textarea {...a} rows={4} value={f.workdays} onInput={set('workdays')} />}</Field>
          <Problem problem={s.problem} errors={errors} shown={['source', 'holidays', 'workdays']} />
          <button type="submit" class="primary" disabled={s.busy}>{ta('save')}</button>
        </form>
      )}
    </section>
  );
}
