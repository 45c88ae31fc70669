// Downsampling of a free-hand drawing to the 8x8, 0..16 input of the digits model.
//
// The UCI "optdigits" preprocessing (the source of scikit-learn's digits data set) size-normalises
// each digit into a 32x32 bitmap and counts the set pixels in each non-overlapping 4x4 block,
// giving 8x8 integers in 0..16. In that data the ink fills all 32 rows and, horizontally, the
// central 24 columns (columns 0 and 7 of the 8x8 image are almost always 0).
//
// Exact method used here:
//   1. The strokes are kept as vector polylines in normalised canvas coordinates (0..1).
//   2. Their centre-line bounding box is scaled uniformly (aspect ratio kept) to fit the box
//      x in [7, 25], y in [3, 29] of a 32x32 frame, and centred at (16, 16).
//   3. They are re-rendered into that frame with a round pen PEN_WIDTH = 6 frame units wide, so the
//      ink spans x in [4, 28] and y in [0, 32] whatever size the person drew at, and the stroke
//      thickness is the same for small and large drawings (as after UCI size normalisation).
//   4. Rendering is anti-aliased at SUPERSAMPLE = 4x (a 128x128 canvas, black on transparent), so
//      each frame pixel's ink coverage is known as a fraction in 0..1 instead of set/unset.
//   5. Each of the 8x8 cells is a 4x4 block of frame pixels (16x16 canvas pixels); its value is
//      round(mean coverage over the block x 16), clamped to 0..16. With 0/1 coverage this is
//      exactly the UCI count of set pixels in the 4x4 block.
//
// The served model then moves each image by its intensity centroid (stages/lib/align.py, inside
// the ONNX graph), as it did every training digit after this same UCI-style centring: the page
// centres the bounding box (the data set's step), the model centres the ink (its own step), so
// this page must not centre by the centroid itself. A drawing centred here is moved at most one
// pixel by the model, and its top and bottom rows are inked alike, so the detector never takes
// it for a digit cut off at the frame (tests/integration/test_demo_page_alignment.py).

export const GRID = 8;
export const FRAME = 32;
export const SUPERSAMPLE = 4;
export const PEN_WIDTH = 6;
export const TARGET_BOX = Object.freeze({ x0: 7, x1: 25, y0: 3, y1: 29 });
const MIN_EXTENT = 1e-6;

/** The uniform transform that maps the strokes' bounding box into TARGET_BOX, centred. */
export function fitTransform(strokes) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const stroke of strokes) {
    for (const point of stroke) {
      minX = Math.min(minX, point.x);
      minY = Math.min(minY, point.y);
      maxX = Math.max(maxX, point.x);
      maxY = Math.max(maxY, point.y);
    }
  }
  if (minX === Infinity) {
    return null;
  }
  const width = Math.max(maxX - minX, MIN_EXTENT);
  const height = Math.max(maxY - minY, MIN_EXTENT);
  const scale = Math.min(
    (TARGET_BOX.x1 - TARGET_BOX.x0) / width,
    (TARGET_BOX.y1 - TARGET_BOX.y0) / height,
  );
  const centreX = (minX + maxX) / 2;
  const centreY = (minY + maxY) / 2;
  return (point) => ({
    x: FRAME / 2 + (point.x - centreX) * scale,
    y: FRAME / 2 + (point.y - centreY) * scale,
  });
}

/** Render the fitted strokes into a (FRAME * SUPERSAMPLE)^2 canvas; returns its alpha channel. */
function renderCoverage(strokes, transform, documentRef) {
  const size = FRAME * SUPERSAMPLE;
  const canvas = documentRef.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.setTransform(SUPERSAMPLE, 0, 0, SUPERSAMPLE, 0, 0);
  context.lineWidth = PEN_WIDTH;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.strokeStyle = "#000";
  context.fillStyle = "#000";
  for (const stroke of strokes) {
    const points = stroke.map(transform);
    if (points.length === 1) {
      context.beginPath();
      context.arc(points[0].x, points[0].y, PEN_WIDTH / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    context.beginPath();
    context.moveTo(points[0].x, points[0].y);
    for (const point of points.slice(1)) {
      context.lineTo(point.x, point.y);
    }
    context.stroke();
  }
  return { alpha: context.getImageData(0, 0, size, size).data, size };
}

/** 64 integers in 0..16 (row-major 8x8) from strokes given as arrays of {x, y} in 0..1. */
export function downsample(strokes, documentRef = document) {
  const values = new Array(GRID * GRID).fill(0);
  const transform = fitTransform(strokes);
  if (transform === null) {
    return values;
  }
  const { alpha, size } = renderCoverage(strokes, transform, documentRef);
  const block = size / GRID;
  for (let row = 0; row < GRID; row += 1) {
    for (let col = 0; col < GRID; col += 1) {
      let total = 0;
      for (let y = row * block; y < (row + 1) * block; y += 1) {
        for (let x = col * block; x < (col + 1) * block; x += 1) {
          total += alpha[(y * size + x) * 4 + 3];
        }
      }
      const coverage = total / (255 * block * block);
      values[row * GRID + col] = Math.min(16, Math.max(0, Math.round(coverage * 16)));
    }
  }
  return values;
}
