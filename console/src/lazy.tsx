// A page loaded on first visit (its own chunk, built by esbuild's code splitting), so pages few people
// open do not weigh on everyone's first load.
import type { FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { t } from './i18n';

export function lazyPage<P extends object>(load: () => Promise<FunctionComponent<P>>): FunctionComponent<P> {
  let page: FunctionComponent<P> | null = null;
  let loading: Promise<void> | null = null;
  return function LazyPage(props: P) {
    const [, setLoaded] = useState(false);
    const [problem, setProblem] = useState('');
    useEffect(() => {
      if (page) return;
      loading ??= load().then((p) => { page = p; });
      loading.then(() => setLoaded(true), (e) => { loading = null; setProblem(String(e?.message || e)); });
    }, []);
    if (page) {
      const Page = page;
      return <Page {...props} />;
    }
    return problem ? <p class="error" role="alert">{t('error', { msg: problem })}</p> : <p role="status">{t('loading')}</p>;
  };
}
