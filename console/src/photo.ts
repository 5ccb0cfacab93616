// A photo made smaller in the browser before it is sent: at most MAX_SIDE pixels on its long side
// and under the server's byte limit, as a JPEG.
import { localMessage } from './errors_i18n';

const MAX_SIDE = 1920;

function load(file: Blob): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    const url = URL.createObjectURL(file);
    img.onload = () => { URL.revokeObjectURL(url); resolve(img); };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error(localMessage('not an image'))); };
    img.src = url;
  });
}

const toBlob = (c: HTMLCanvasElement, q: number) =>
  new Promise<Blob>((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error('encode failed'))),
    'image/jpeg', q));

export async function shrink(file: Blob, limitBytes: number): Promise<Blob> {
  const img = await load(file);
  let side = Math.min(MAX_SIDE, Math.max(img.naturalWidth, img.naturalHeight));
  for (let round = 0; round < 8; round++) {
    const scale = side / Math.max(img.naturalWidth, img.naturalHeight);
    const c = document.createElement('canvas');
    c.width = Math.max(1, Math.round(img.naturalWidth * scale));
    c.height = Math.max(1, Math.round(img.naturalHeight * scale));
    c.getContext('2d')!.drawImage(img, 0, 0, c.width, c.height);
    for (const q of [0.85, 0.7, 0.55]) {
      const b = await toBlob(c, q);
      if (b.size <= limitBytes) return b;
    }
    side = Math.round(side * 0.7);
  }
  throw new Error('the photo cannot be made small enough');
}
