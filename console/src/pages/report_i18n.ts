// Strings of the patrol report page (上报问题) and of a case's photos, zh-CN and English, beside the
// app's own dictionary so the page carries its words with it.
import { lang } from '../i18n';

const zh = {
  reportProblem: '上报问题',
  reportIntro: '巡查中发现的问题：位置须在本人网格内，附 1 至 4 张照片。提交后由网格监管员甄别。',
  position: '位置',
  lon: '经度',
  lat: '纬度',
  locateAgain: '重新定位',
  located: '已定位（精度约 {m} 米），可修改',
  locateFailed: '无法定位（{msg}），请填写经纬度',
  category: '问题类别',
  chooseCategory: '请选择',
  description: '问题描述',
  photos: '照片（1–4 张）',
  addPhoto: '拍照或选择照片',
  removePhoto: '移除照片 {n}',
  photoReady: '照片 {n}（{kb} KB）',
  shrinking: '正在压缩照片…',
  submitReport: '提交上报',
  sending: '提交中…',
  filed: '已立案：案卷 {id}，等待监管员甄别',
  joined: '附近已有同类在办案卷 {id}，本次上报已并入',
  repeat: '此上报已提交过：案卷 {id}',
  queuedReport: '离线：上报已保存，联网后自动提交（不会重复立案）',
  needPhoto: '请至少附一张照片',
  tooMany: '最多 4 张照片',
  fixFields: '请更正标出的内容',
  viewCase: '查看案卷',
  reportPhoto: '上报时的照片',
  photoOf: '{task} 的照片 {n}',
} as const;

export type ReportKey = keyof typeof zh;

const en: Record<ReportKey, string> = {
  reportProblem: 'Report a problem',
  reportIntro: 'A problem found on patrol: the position must be in your grid, with 1 to 4 photos. A supervisor reviews it.',
  position: 'Position',
  lon: 'Longitude',
  lat: 'Latitude',
  locateAgain: 'Locate again',
  located: 'Located (about {m} m accurate); you may edit it',
  locateFailed: 'No position ({msg}); enter longitude and latitude',
  category: 'Category',
  chooseCategory: 'Choose',
  description: 'Description',
  photos: 'Photos (1–4)',
  addPhoto: 'Take or pick a photo',
  removePhoto: 'Remove photo {n}',
  photoReady: 'Photo {n} ({kb} KB)',
  shrinking: 'Making the photo smaller…',
  submitReport: 'Send report',
  sending: 'Sending…',
  filed: 'Filed as case {id}, awaiting a supervisor’s review',
  joined: 'An open case of this kind nearby ({id}): your report joined it',
  repeat: 'Already sent: case {id}',
  queuedReport: 'Offline: the report is saved and sent when back online (it files one case)',
  needPhoto: 'Add at least one photo',
  tooMany: 'At most 4 photos',
  fixFields: 'Correct the marked fields',
  viewCase: 'View the case',
  reportPhoto: 'Photo sent with the report',
  photoOf: 'Photo {n} of {task}',
};

export function rt(key: ReportKey, vars: Record<string, string | number> = {}): string {
  const text: string = (lang() === 'en' ? en : zh)[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}
