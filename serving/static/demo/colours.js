// Colour scales: grey ink for the 0..16 input, a diverging blue-white-red scale for contributions.

const PAPER = [255, 255, 255];
const INK = [17, 24, 39];
const NEGATIVE = [33, 102, 172]; // ColorBrewer RdBu blue
const NEUTRAL = [247, 247, 247];
const POSITIVE = [178, 24, 43]; // ColorBrewer RdBu red

function mix(from, to, amount) {
  const t = Math.min(1, Math.max(0, amount));
  const channels = from.map((channel, index) => Math.round(channel + (to[index] - channel) * t));
  return `rgb(${channels.join(", ")})`;
}

/** Ink colour for a coverage in 0..1 (white paper to near-black ink). */
export function inkColour(amount) {
  return mix(PAPER, INK, amount);
}

/** Diverging colour for a signed share in -1..1 (blue negative, near-white 0, red positive). */
export function divergingColour(share) {
  return share >= 0 ? mix(NEUTRAL, POSITIVE, share) : mix(NEUTRAL, NEGATIVE, -share);
}
