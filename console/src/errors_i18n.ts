// The server's refusals in the reader's language. The API answers in English ({error: {code, message,
// fields}}); in zh-CN a message is translated by its stable `code` when the code says everything, else by
// the pattern of its words (marshmallow's messages, the form checks, evidence, references), keeping its
// parameters (the value, the limit, the field). A message no rule knows is shown as it came.
import { lang, when } from './i18n';

/** Codes whose message has no parameters: the code alone says it. */
const CODES: Record<string, string> = {
  invalid_credentials: '用户名或密码错误',
  validation_failed: '请求中有字段不正确',
  unauthenticated: '请先登录',
  token_expired: '登录已过期，请重新登录',
  invalid_token: '登录已失效，请重新登录',
  invalid_api_key: 'API 密钥无效',
  too_many_attempts: '尝试次数过多，请稍后再试',
  conflict: '与已有数据冲突',
  invalid_value: '有值超出范围或无法保存（过长或含非法字符）',
  unavailable: '服务暂时不可用，请稍后再试',
  busy: '系统繁忙，请稍后再试',
  internal_error: '发生意外错误，已记录',
  invalid_model: 'BPMN 模型未通过检查',
  idempotency_key_reused: '该请求标识已用于另一个请求',
};

const KINDS: Record<string, string> = {
  date: '日期', datetime: '日期时间', time: '时间', integer: '整数', number: '数字', string: '文本',
  boolean: '是/否', 'email address': '电子邮箱', url: '网址', uuid: 'UUID', list: '列表', 'mapping type': '对象',
  tuple: '列表', 'IPv4 address': 'IPv4 地址', 'IP address': 'IP 地址', timedelta: '时长', decimal: '数字',
};

const OPS: Record<string, string> = {
  'greater than or equal to': '不小于', 'greater than': '大于', 'less than or equal to': '不大于', 'less than': '小于',
};

const op = (words: string) => OPS[words] || words;
const kind = (words: string) => KINDS[words] || KINDS[words.toLowerCase()] || words;

type Rule = [RegExp, (...m: string[]) => string];

/** zh-CN for the field and refusal messages the API sends; the first match wins. */
const RULES: Rule[] = [
  // marshmallow
  [/^Missing data for required field\.$/, () => '缺少必填字段'],
  [/^Field may not be null\.$/, () => '不能为空'],
  [/^Unknown field\.$/, () => '未知字段'],
  [/^Invalid input type\.$/, () => '输入类型不正确'],
  [/^Invalid value\.$/, () => '值不正确'],
  [/^Not a valid (.+?)\.$/, (k) => `不是有效的${kind(k)}`],
  [/^Shorter than minimum length (\S+)\.$/, (n) => `长度不能少于 ${n}`],
  [/^Longer than maximum length (\S+)\.$/, (n) => `长度不能超过 ${n}`],
  [/^Length must be between (\S+) and (\S+)\.$/, (a, b) => `长度须在 ${a} 到 ${b} 之间`],
  [/^Length must be (\S+)\.$/, (n) => `长度须为 ${n}`],
  [/^Must be (greater than(?: or equal to)?) (\S+) and (less than(?: or equal to)?) (\S+)\.$/,
    (o1, a, o2, b) => `须${op(o1)} ${a} 且${op(o2)} ${b}`],
  [/^Must be ((?:greater|less) than(?: or equal to)?) (\S+)\.$/, (o, n) => `须${op(o)} ${n}`],
  [/^Must be one of: (.+)\.$/, (c) => `须为以下之一：${c}`],
  [/^Must be equal to (.+)\.$/, (v) => `须等于 ${v}`],
  [/^String does not match expected pattern\.$/, () => '格式不正确'],
  [/^Not a valid datetime or timezone-aware\.?$/, () => '须为带时区的日期时间'],
  [/^Not a valid aware datetime\.$/, () => '须为带时区的日期时间'],
  // the form checks (engine/forms.py)
  [/^required$/, () => '必填'],
  [/^required when (.+)$/, (c) => `当 ${c} 时必填`],
  [/^only allowed when (.+)$/, (c) => `仅当 ${c} 时可填`],
  [/^must be one of: (.+) \(got (.+)\)$/, (c, v) => `须为以下之一：${c}（收到 ${v}）`],
  [/^must be at most (\S+) characters \(got (\S+)\)$/, (n, g) => `不能超过 ${n} 个字（现为 ${g}）`],
  [/^must be at least (\S+) characters$/, (n) => `不能少于 ${n} 个字`],
  [/^must be at least (\S+)$/, (n) => `不能小于 ${n}`],
  [/^must be at most (\S+)$/, (n) => `不能大于 ${n}`],
  [/^must be text, not (.+)$/, (k) => `须为文本（收到 ${k}）`],
  [/^must be true or false, not (.+)$/, (k) => `须为是或否（收到 ${k}）`],
  [/^must be a number, not (.+)$/, (k) => `须为数字（收到 ${k}）`],
  [/^must be a finite number$/, () => '须为有限的数字'],
  [/^must be a whole number$/, () => '须为整数'],
  [/^must be a date and time in ISO 8601, e\.g\. (\S+)$/, (e) => `须为 ISO 8601 日期时间，例如 ${e}`],
  [/^needs a UTC offset, e\.g\. (\S+)$/, (e) => `须带时区偏移，例如 ${e}`],
  [/^must be between the years (\d+) and (\d+)$/, (a, b) => `年份须在 ${a} 到 ${b} 之间`],
  [/^does not have the expected form \((.+)\)$/, (p) => `格式不符（${p}）`],
  [/^must be later than now \((.+)\)$/, (n) => `须晚于当前时间（${n}）`],
  [/^the form has invalid fields \((.+)\)$/s, (s) => `表单有字段不正确（${s}）`],
  // references, evidence, photos, roles
  [/^there is no grid (.+)$/, (g) => `没有网格 ${g}`],
  [/^grid (\S+) is unknown$/, (g) => `网格 ${g} 不存在`],
  [/^the check-in is (\S+) m outside grid (\S+) \(tolerance (\S+) m\)$/,
    (d, g, tol) => `签到位置在网格 ${g} 之外 ${d} 米（允许 ${tol} 米），请到网格内再签到`],
  [/^the check-in is (\S+) m from (.+) \(tolerance (\S+) m\)$/,
    (d, at, tol) => `签到位置距 ${at} ${d} 米（允许 ${tol} 米）`],
  [/^a night check is checked in between 18:00 and 06:00$/, () => '夜查须在 18:00 至 06:00 之间签到'],
  [/^evidence needs an open task of an instance with a grid$/, () => '只有办理中且属于某网格的任务才能上传现场证据'],
  [/^only whoever works on the task may add evidence to it$/, () => '只有任务的办理人可以上传现场证据'],
  [/^not an image$/, () => '不是图片'],
  [/^the file is not an? (\S+) image$/, (t) => `文件不是 ${t} 图片`],
  [/^photos must be (.+)$/, (t) => `照片须为 ${t}`],
  [/^the photo is larger than (\d+) bytes \((\S+) MB\)$/, (_b, mb) => `照片超过 ${mb} MB`],
  [/^photo (\d+): (.+)$/s, (n, m) => `第 ${n} 张照片：${zhMessage(m)}`],
  [/^this endpoint needs one of the roles: (.+)$/, (r) => `需要以下角色之一：${r}`],
  // the staff register (workflows/staff.py)
  [/^(wechat_work|sms) needs (wecomId|phone)$/,
    (c, f) => `选择${c === 'sms' ? '短信' : '企业微信'}须填写${f === 'phone' ? '手机号' : '企业微信 ID'}`],
  [/^a mobile number: 11 digits beginning with 1 \(\+86 optional\), or \+<country><number>$/,
    () => '须为手机号：以 1 开头的 11 位数字（+86 可省略），或 + 国家代码和号码'],
  [/^'(.+)' is not a current grid's code$/, (g) => `${g} 不是现行网格编码`],
  [/^grid (\S+) belongs to tenant (\S+), not (\S+)$/, (g, t, u) => `网格 ${g} 属于 ${t}，不属于 ${u}`],
  [/^'(.+)' is not a department of tenant (\S+)$/, (d, t) => `${d} 不是 ${t} 的部门`],
  [/^one of (.+)$/, (c) => `须为以下之一：${c}`],
  [/^someone is already known by this username$/, () => '该用户名已有人使用'],
  [/^this username is a login's outside your area: an admin links it$/, () => '该用户名是您辖区外的登录账号，须由管理员关联'],
  [/^the login is spelt '(.+)': give the username exactly so$/, (u) => `登录账号写作 ${u}，请按原样填写用户名`],
  [/^the login '(.+)' works in grid (\S+); (\S+) is outside it$/, (u, g, c) => `登录账号 ${u} 的工作网格为 ${g}，${c} 不在其中`],
  [/^the username of item (\d+) again$/, (n) => `与第 ${Number(n) + 1} 项的用户名重复`],
  [/^a channel is named once$/, () => '每个渠道只能选一次'],
  [/^grid (\S+) is outside your area \((.*)\)$/, (g, a) => `网格 ${g} 不在您的辖区（${a}）内`],
  [/^a (inspector|supervisor|leader|admin) is registered by an admin$/,
    (p) => `${({ inspector: '网格员', supervisor: '监管员', leader: '领导', admin: '管理员' } as Record<string, string>)[p]}须由管理员登记`],
  [/^must not be blank$/, () => '不能为空白'],
  [/^a grid code \(digits\)$/, () => '须为网格编码（数字）'],
  [/^a city's 6-digit code$/, () => '须为 6 位城市代码'],
  [/^2 to 100 letters, digits, _ \. @ -, beginning with a letter or digit$/,
    () => '2 到 100 个字母、数字或 _ . @ -，以字母或数字开头'],
  [/^a WeChat Work userid: letters, digits, _ @ \. -$/, () => '须为企业微信 userid：字母、数字或 _ @ . -'],
  [/^give at least one person$/, () => '至少填写一人'],
  // the duty roster (workflows/duty.py)
  [/^no current grid (\S+)$/, (g) => `没有现行网格 ${g}`],
  [/^no member of staff with id (\S+)$/, (n) => `人员名册中没有编号为 ${n} 的人员`],
  [/^(.+) is not active$/, (w) => `${w} 已停用`],
  [/^(.+) works for tenant (\S+), grid (\S+) belongs to (\S+)$/, (w, t, g, u) => `${w} 属于 ${t}，网格 ${g} 属于 ${u}`],
  [/^(.+) belongs to grid (\S+), which is not (\S+) or under it$/,
    (w, g, x) => `${w} 属于网格 ${g}，不在 ${x} 及其下级网格中`],
  [/^must be after startsAt$/, () => '须晚于开始时间'],
  [/^a shift lasts at most (\S+) hours \(this one (\S+)\)/,
    (n, m) => `一个班次最长 ${n} 小时（此班次 ${m} 小时）；长假请排成多个班次`],
  [/^the shift is over: /, () => '该班次已结束：值班表是实际值班的记录，不补排过去的班次'],
  [/^at most (\d+) days ahead$/, (n) => `最多提前 ${n} 天排班`],
  [/^a shift overlaps another of the same person in the same grid$/, () => '与该人员在同一网格的另一班次时间重叠'],
  [/^overlaps duty shift (\d+) of the same person in grid (\S+) \((\S+) to (\S+)\)$/,
    (n, g, a, b) => `与该人员在网格 ${g} 的班次 ${n}（${when(a)} 至 ${when(b)}）时间重叠`],
  [/^you may roster only grids in your scope$/, () => '只能为您辖区内的网格排班'],
  [/^the duty shift was refused: (\S+) (.+)$/s, (_f, m) => `班次未通过检查：${zhMessage(m)}`],
  [/^a shift cannot be ended in the past: /, () => '不能把班次结束在过去：值班表是实际值班的记录'],
  [/^the shift begins at (\S+): delete it instead/, (t) => `该班次 ${t} 才开始：请删除，而不是提前结束`],
  [/^the shift already ends at (\S+)$/, (t) => `该班次已于 ${t} 结束`],
  [/^duty shift (\d+) has begun: end it instead/, (n) => `班次 ${n} 已开始：请提前结束，而不是删除`],
  [/^repeat a shift on 1 to (\d+) days$/, (n) => `连续天数须为 1 到 ${n}`],
];

function zhMessage(message: string): string {
  for (const [re, make] of RULES) {
    const m = re.exec(message);
    if (m) return make(...m.slice(1));
  }
  return message;
}

/** One message in the reader's language (unchanged in English or when no rule knows it). */
export function localMessage(message: string): string {
  return lang() === 'en' ? message : zhMessage(message);
}

/** A refusal's headline: by its code when the code says it all, else by its words. */
export function localError(code: string, message: string): string {
  if (lang() === 'en') return message;
  return CODES[code] ?? zhMessage(message);
}

/** marshmallow's fields ({name: [messages]}, nested for list items) with every message localized. */
export function localFields(fields: unknown): any {
  if (typeof fields === 'string') return localMessage(fields);
  if (Array.isArray(fields)) return fields.map(localFields);
  if (fields && typeof fields === 'object') {
    return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, localFields(v)]));
  }
  return fields;
}

/** The names of list items' fields the console sends (a day's date and name), in Chinese. */
const ITEM_FIELDS: Record<string, string> = { date: '日期', name: '名称' };

/** A place in a list (items counted from 1, as people count): "第 2 行" / "line 2". */
function position(index: number, unit: 'line' | 'item'): string {
  if (lang() === 'en') return `${unit} ${index}`;
  return unit === 'line' ? `第 ${index} 行` : `第 ${index} 项`;
}

/** One field's errors as readable lines. A nested value (a list's items by index, an item's fields)
 * becomes "第 2 行（date）：不是有效的日期"; `lineOf` maps an item's index to what the reader counts
 * (e.g. the textarea line it came from), by default index + 1. */
export function fieldMessages(value: unknown, unit: 'line' | 'item' = 'item',
                              lineOf: (index: number) => number = (i) => i + 1): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap((v) => fieldMessages(v, unit, lineOf));
  if (typeof value !== 'object') return [String(value)];
  const sep = lang() === 'en' ? ': ' : '：';
  const out: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const inner = nestedMessages(v);
    const where = /^\d+$/.test(k) ? position(lineOf(Number(k)), unit) : k;
    out.push(...inner.map(([sub, m]) => {
      const label = !sub ? where : lang() === 'en' ? `${where} (${sub})` : `${where}（${ITEM_FIELDS[sub] ?? sub}）`;
      return `${label}${sep}${m}`;
    }));
  }
  return out;
}

/** [sub-field path, message] pairs of a nested value ('' for messages of the value itself). */
function nestedMessages(v: unknown, path = ''): [string, string][] {
  if (typeof v === 'string') return [[path, v]];
  if (Array.isArray(v)) return v.flatMap((x) => nestedMessages(x, path));
  if (v && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .flatMap(([k, x]) => nestedMessages(x, path ? `${path}.${k}` : k));
  }
  return v === undefined || v === null ? [] : [[path, String(v)]];
}
