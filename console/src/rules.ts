// The forms' rule language (requiredWhen / shownWhen): names, literals, == != in, not in, and, or,
// not, parentheses and [lists]. Evaluated over the form's current values and the process's values.

type Value = unknown;
type Token = { k: 'name' | 'str' | 'num' | 'op'; v: string };

function tokens(src: string): Token[] {
  const out: Token[] = [];
  const re = /(\d+(?:\.\d+)?)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(==|!=|\(|\)|\[|\]|,)|([A-Za-z_][\w.]*)/y;
  let pos = 0;
  for (;;) {
    while (pos < src.length && /\s/.test(src[pos])) pos++;
    if (pos >= src.length) return out;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`cannot read ${src}`);
    pos = re.lastIndex;
    if (m[1] !== undefined) out.push({ k: 'num', v: m[1] });
    else if (m[2] !== undefined || m[3] !== undefined) out.push({ k: 'str', v: (m[2] ?? m[3]) as string });
    else if (m[4] !== undefined) out.push({ k: 'op', v: m[4] });
    else out.push({ k: 'name', v: m[5] });
  }
}

export function evaluate(src: string, scope: Record<string, Value>): boolean {
  const ts = tokens(src);
  let i = 0;
  const peek = () => ts[i];
  const isWord = (w: string) => peek()?.k === 'name' && peek().v === w;
  const take = (v?: string) => {
    const t = ts[i++];
    if (!t || (v !== undefined && t.v !== v)) throw new Error(`expected ${v} in ${src}`);
    return t;
  };
  const or = (): Value => {
    let v = and();
    while (isWord('or')) { take(); const r = and(); v = !!v || !!r; }
    return v;
  };
  const and = (): Value => {
    let v = not();
    while (isWord('and')) { take(); const r = not(); v = !!v && !!r; }
    return v;
  };
  const not = (): Value => {
    if (isWord('not')) { take(); return !not(); }
    return cmp();
  };
  const cmp = (): Value => {
    const left = atom();
    const t = peek();
    if (t?.v === '==') { take(); return eq(left, atom()); }
    if (t?.v === '!=') { take(); return !eq(left, atom()); }
    if (isWord('in')) { take(); return contains(atom(), left); }
    if (isWord('not') && ts[i + 1]?.v === 'in') { take(); take(); return !contains(atom(), left); }
    return left;
  };
  const atom = (): Value => {
    const t = take();
    if (t.k === 'num') return Number(t.v);
    if (t.k === 'str') return t.v;
    if (t.v === '(') { const v = or(); take(')'); return v; }
    if (t.v === '[') {
      const items: Value[] = [];
      while (peek()?.v !== ']') { items.push(atom()); if (peek()?.v === ',') take(); }
      take(']');
      return items;
    }
    if (t.k === 'name') {
      if (t.v === 'True' || t.v === 'true') return true;
      if (t.v === 'False' || t.v === 'false') return false;
      if (t.v === 'None' || t.v === 'null') return null;
      return scope[t.v] ?? null;
    }
    throw new Error(`unexpected ${t.v} in ${src}`);
  };
  const v = or();
  if (i !== ts.length) throw new Error(`trailing input in ${src}`);
  return !!v;
}

const eq = (a: Value, b: Value) => a === b || (a == null && b == null);
const contains = (list: Value, v: Value) => Array.isArray(list) ? list.some((x) => eq(x, v))
  : typeof list === 'string' && typeof v === 'string' && list.includes(v);

/** A rule that cannot be read shows the field (the server still checks the values). */
export function holds(src: string | undefined, scope: Record<string, Value>, fallback: boolean): boolean {
  if (!src) return fallback;
  try {
    return evaluate(src, scope);
  } catch {
    return fallback;
  }
}
