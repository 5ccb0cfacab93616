import { useState } from 'preact/hooks';
import { login } from '../api';
import { t } from '../i18n';

export function Login(props: { onLoggedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setProblem('');
    try {
      await login(username, password);
      props.onLoggedIn();
    } catch (err) {
      setProblem(t('loginFailed', { msg: (err as Error).message }));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="login card" onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">{t('appName')}</h1>
      <div class="field">
        <label for="username">{t('username')}</label>
        <input id="username" name="username" autoComplete="username" required value={username}
               onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
      </div>
      <div class="field">
        <label for="password">{t('password')}</label>
        <input id="password" name="password" type="password" autoComplete="current-password" required
               value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
      </div>
      {problem && <p class="error" role="alert">{problem}</p>}
      <button type="submit" class="primary" disabled={busy}>{t('login')}</button>
    </form>
  );
}
