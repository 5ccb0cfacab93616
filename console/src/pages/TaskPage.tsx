import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { CasePhotos } from '../components/CasePhotos';
import { TaskForm } from '../components/TaskForm';
import { t, when } from '../i18n';
import { navigate, query } from '../router';

export interface Task {
  id: string; name: string | null; taskDefinitionKey: string; processInstanceId: string; assignee: string | null;
  candidateRole: string | null; candidateScope: string | null; due: string | null; status: string; created: string;
}

interface CaseFacts { category: string; source: string; description: string | null }

export function TaskPage(props: { id: string }) {
  const [task, setTask] = useState<Task | null>(null);
  const [facts, setFacts] = useState<CaseFacts | null>(null);
  const [problem, setProblem] = useState('');
  const caseId = query().get('case');
  useEffect(() => {
    api<Task>(`/task/${encodeURIComponent(props.id)}`).then(setTask).catch((e) => setProblem(e.message));
  }, [props.id]);
  useEffect(() => {  // what was reported, beside the form that decides on it
    if (caseId) api<CaseFacts>(`/cases/${encodeURIComponent(caseId)}`).then(setFacts).catch(() => setFacts(null));
  }, [caseId]);
  if (problem) return <p class="error" role="alert">{t('error', { msg: problem })}</p>;
  if (!task) return <p role="status">{t('loading')}</p>;
  const late = task.due && new Date(task.due).getTime() < Date.now();
  return (
    <section aria-labelledby="form-title" class="task-page">
      <p><a href="/">← {t('home')}</a>{caseId && <> · <a href={`/cases/${encodeURIComponent(caseId)}`}>{t('case')} {caseId}</a></>}</p>
      <dl class="facts">
        <dt>{t('task')}</dt><dd>{task.name}</dd>
        <dt>{t('due')}</dt><dd class={late ? 'late' : ''}>{when(task.due)}{late && ` (${t('overdueBadge')})`}</dd>
        <dt>{t('grid')}</dt><dd>{task.candidateScope || '—'}</dd>
        {facts && <><dt>{t('category')}</dt><dd>{facts.category}</dd><dt>{t('source')}</dt><dd>{facts.source}</dd></>}
        {facts?.description && <><dt>{t('description')}</dt><dd data-testid="case-description">{facts.description}</dd></>}
      </dl>
      {task.status === 'open'
        ? <TaskForm taskId={task.id} onDone={() => navigate(caseId ? `/cases/${encodeURIComponent(caseId)}` : '/')} />
        : <p>{t('done')}</p>}
      {caseId && <CasePhotos caseId={caseId} />}
    </section>
  );
}
