// Colour scales: grey ink for the 0..16 input, a diverging blue-white-red scale for contributions.

const PAPER = [255, 255, 255];
const INK = [17, 24, 39];
const NEGATIVE = [33, 102, 172]; // ColorBrewer RdBu blue
const NEUTRAL = [247, 247, 247];
const POSITIVE = [178, 24, 43]; // ColorBrewer RdBu red

const DARK_TEXT = [11, 15, 20];
const LIGHT_TEXT = [255, 255, 255];

function mix(from, to, amount) {
  const t = Math.min(1, Math.max(0, amount));
  return from.map((channel, index) => Math.round(channel + (to[index] - channel) * t));
}

function css(rgb) {
  return `rgb(${rgb.join(", ")})`;
}

/** WCAG relative luminance of an sRGB colour. */
function luminance(rgb) {
  const [r, g, b] = rgb.map((channel) => {
    const c = channel / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(first, second) {
  const [light, dark] = [luminance(first), luminance(second)].sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}

/** The background and the text colour (dark or white, whichever contrasts more) for a cell. */
function swatch(rgb) {
  const text = contrast(rgb, DARK_TEXT) >= contrast(rgb, LIGHT_TEXT) ? DARK_TEXT : LIGHT_TEXT;
  return { background: css(rgb), text: css(text) };
}

/** Ink swatch for a coverage in 0..1 (white paper to near-black ink). */
export function inkColour(amount) {
  return swatch(mix(PAPER, INK, amount));
}

/** Diverging swatch for a signed share in -1..1 (blue negative, near-white 0, red positive). */
export function divergingColour(share) {
  return swatch(share >= 0 ? mix(NEUTRAL, POSITIVE, share) : mix(NEUTRAL, NEGATIVE, -share));
}
