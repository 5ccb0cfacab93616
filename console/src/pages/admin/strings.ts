// The administration pages' words, zh-CN and English (the language chosen in the header).
import { lang } from '../../i18n';

const zh = {
  administration: '系统管理', fixErrors: '请修改标出的字段', loading: '加载中…', notFound: '没有这个页面',
  users: '用户', newUser: '新建用户', editUser: '修改用户 {name}', username: '用户名', displayName: '姓名',
  roles: '角色', role_admin: '管理员', role_supervisor: '监管员', role_inspector: '网格员', role_leader: '领导',
  scope: '网格范围', scopeHint: '用户工作的网格编码；留空：只看分配给本人的工作（管理员、领导不受范围限制）', personId: '关联人员编号', personHint: '值班表中的人员编号（可不填）',
  person: '关联人员', initialPassword: '初始密码', passwordHint: '留空则生成一次性密码，只显示一次',
  passwordOnce: '{name} 的新密码（只显示这一次，请转告本人）：', dismiss: '知道了',
  confirmReset: '为 {name} 重置密码？其登录将全部失效。', resetPassword: '重置密码', disable: '停用', enable: '启用',
  active: '在用', disabled: '已停用', state: '状态', everywhere: '全部', assignedOnly: '无（只看分配给本人的）', created: '创建时间', actions: '操作',
  edit: '修改', save: '保存', cancel: '取消', create: '创建', add: '添加', delete: '删除', any: '全部', search: '搜索',
  filter: '筛选', show: '显示', total: '共 {n} 条',
  categories: '问题类别与时限', code: '编码', name: '名称', urgent: '紧急', stage: '环节', limitMinutes: '时限（分钟）',
  clock: '计时', clock_working: '工作时间', clock_natural: '自然时间', effectiveFrom: '生效时间', effectiveHint: '留空：立即生效；在办案卷保持原时限',
  timeRulesOf: '{code} 的时限', ruleSets: '历次设置',
  stage_review: '甄别', stage_dispatch: '派遣', stage_sign_for: '签收', stage_handle: '处置', stage_feedback: '执法反馈', stage_verify: '核查',
  calendar: '节假日', year: '年份', source: '来源', holidays: '法定节假日', workdays: '调休上班日',
  dayLines: '每行一天：YYYY-MM-DD 名称', noHolidays: '这一年还没有节假日数据（只按周末计算）', loadedBy: '由 {by} 于 {at} 载入',
  duty: '值班表', grid: '网格', day: '日期', subgrids: '含下级网格', kind: '类型', starts: '开始', ends: '结束',
  shift_day: '白班', shift_night: '夜班', shift_holiday: '节假日值班', endNow: '提前结束', newShift: '新增班次', repeatDays: '连续天数',
  sources: '监控点与限值', mn: 'MN 编号', enterprise: '企业', outlet: '排口', station: '监测站', loggerPassword: '数采仪密码',
  lon: '经度', lat: '纬度', gridOrPoint: '填写网格编码，或留空按经纬度定位', newSource: '登记监控点', lastSeen: '最近上报',
  limits: '限值', limitsOf: '{mn} 的限值', limitLines: '每行一项：污染物 数据类型 限值 单位，如 a21026 hourly 35 mg/m3',
  warningPolicies: '预警通知规则', level: '级别', gridPrefix: '网格前缀', notifyLevel: '通知层级', notifyPost: '通知岗位',
  ackMinutes: '确认时限（分钟）', renotify: '未确认再通知', newPolicy: '新增规则', defaultsOnly: '没有规则：按默认通知',
  incidents: '异常事件', open: '未处理', resolved: '已处理', where: '位置', message: '信息', attempts: '尝试次数', retry: '重试',
  notices: '发送失败的通知', recipient: '接收人', channel: '渠道',
  gridImport: '网格导入', gridImportHelp: '上传 {tenant} 的网格 GeoJSON（FeatureCollection）：先检查，再导入（替换现有网格）。',
  seeMap: '在地图上查看', geojsonFile: 'GeoJSON 文件', check: '检查', import: '导入', feature: '要素',
  dryRunOk: '检查通过：{n} 个网格，可以导入。', imported: '已导入：新增 {added}，变更 {changed}，撤销 {retired}，未变 {unchanged}。',
};

export type TKey = keyof typeof zh;

const en: Record<TKey, string> = {
  administration: 'Administration', fixErrors: 'Please correct the marked fields', loading: 'Loading…', notFound: 'No such page',
  users: 'Users', newUser: 'New user', editUser: 'Edit user {name}', username: 'Username', displayName: 'Name',
  roles: 'Roles', role_admin: 'Administrator', role_supervisor: 'Supervisor', role_inspector: 'Inspector', role_leader: 'Leader',
  scope: 'Grid scope', scopeHint: "The code of the user's grid; empty: only work assigned to them (admins and leaders are not limited by it)", personId: 'Linked person id',
  personHint: "The person's id in the roster (optional)", person: 'Linked person', initialPassword: 'Initial password',
  passwordHint: 'Empty: a one-time password is generated and shown once',
  passwordOnce: 'New password of {name} (shown this once; pass it on):', dismiss: 'Dismiss',
  confirmReset: "Reset {name}'s password? All their logins end.", resetPassword: 'Reset password', disable: 'Disable', enable: 'Enable',
  active: 'Active', disabled: 'Disabled', state: 'State', everywhere: 'everywhere', assignedOnly: 'none (only work assigned to them)', created: 'Created', actions: 'Actions',
  edit: 'Edit', save: 'Save', cancel: 'Cancel', create: 'Create', add: 'Add', delete: 'Delete', any: 'Any', search: 'Search',
  filter: 'Filter', show: 'Show', total: '{n} in all',
  categories: 'Categories and time limits', code: 'Code', name: 'Name', urgent: 'Urgent', stage: 'Stage', limitMinutes: 'Limit (minutes)',
  clock: 'Clock', clock_working: 'working time', clock_natural: 'natural time', effectiveFrom: 'Effective from',
  effectiveHint: 'Empty: now; running cases keep their limits', timeRulesOf: 'Time limits of {code}', ruleSets: 'Rule sets',
  stage_review: 'Review', stage_dispatch: 'Dispatch', stage_sign_for: 'Sign for', stage_handle: 'Handling',
  stage_feedback: 'Enforcement feedback', stage_verify: 'Verification',
  calendar: 'Holidays', year: 'Year', source: 'Source', holidays: 'Statutory holidays', workdays: 'Swapped working days',
  dayLines: 'One day a line: YYYY-MM-DD name', noHolidays: 'No holiday data for this year (weekends only)', loadedBy: 'Loaded by {by} at {at}',
  duty: 'Duty roster', grid: 'Grid', day: 'Day', subgrids: 'With the grids below', kind: 'Kind', starts: 'Starts', ends: 'Ends',
  shift_day: 'Day shift', shift_night: 'Night shift', shift_holiday: 'Holiday duty', endNow: 'End now', newShift: 'New shift',
  repeatDays: 'Consecutive days',
  sources: 'Monitoring sources and limits', mn: 'MN', enterprise: 'Enterprise', outlet: 'Outlet', station: 'Station',
  loggerPassword: "Data logger's password", lon: 'Longitude', lat: 'Latitude', gridOrPoint: 'A grid code, or empty to locate by lon/lat',
  newSource: 'Register a source', lastSeen: 'Last heard', limits: 'Limits', limitsOf: 'Limits of {mn}',
  limitLines: 'One a line: pollutant dataKind value unit, e.g. a21026 hourly 35 mg/m3',
  warningPolicies: 'Warning policies', level: 'Level', gridPrefix: 'Grid prefix', notifyLevel: 'Notify level', notifyPost: 'Notify post',
  ackMinutes: 'Acknowledge within (minutes)', renotify: 'Notify again if unacknowledged', newPolicy: 'New policy row',
  defaultsOnly: 'No rows: the defaults apply',
  incidents: 'Incidents', open: 'Open', resolved: 'Resolved', where: 'Where', message: 'Message', attempts: 'Attempts', retry: 'Retry',
  notices: 'Notices that failed', recipient: 'Recipient', channel: 'Channel',
  gridImport: 'Grid import', gridImportHelp: "Upload {tenant}'s grids as a GeoJSON FeatureCollection: check first, then import (it replaces the grids).",
  seeMap: 'See them on the map', geojsonFile: 'GeoJSON file', check: 'Check', import: 'Import', feature: 'Feature',
  dryRunOk: 'Checked: {n} grids, ready to import.', imported: 'Imported: {added} added, {changed} changed, {retired} retired, {unchanged} unchanged.',
};

export function ta(key: TKey, vars: Record<string, string | number> = {}): string {
  const text: string = (lang() === 'en' ? en : zh)[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}
