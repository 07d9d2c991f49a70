import { describe, expect, it } from 'vitest';
import { annAvailable, annGraphFromBytes, annOptionsFromConfig, createAnnGraph, DEFAULT_ANN } from './ann.ts';

describe('annOptionsFromConfig', () => {
  it('maps the snake_case config slice, fills defaults, and rejects bad values', () => {
    expect(annOptionsFromConfig()).toEqual(DEFAULT_ANN);
    expect(annOptionsFromConfig({ min_vectors: 0, expansion_search: 256, quantization: 'f32' })).toEqual({
      ...DEFAULT_ANN,
      minVectors: 0,
      expansionSearch: 256,
      quantization: 'f32',
    });
    expect(() => annOptionsFromConfig({ connectivity: 1 })).toThrow(
      /ann.connectivity must be an integer ≥ 2/,
    );
    expect(() => annOptionsFromConfig({ quantization: 'f64' as never })).toThrow(/f32, f16 or i8/);
  });
});

describe.skipIf(!annAvailable)('the usearch graph', () => {
  it('finds the nearest labels, forgets removed ones, and survives serialisation', () => {
    const graph = createAnnGraph(3, { quantization: 'f32' })!;
    graph.add([10, 20, 30], new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]));
    expect(graph.search(new Float32Array([0.9, 0.1, 0]), 2).labels).toEqual([10, 20]);
    graph.remove(10);
    expect(graph.search(new Float32Array([0.9, 0.1, 0]), 1).labels).toEqual([20]);
    const copy = annGraphFromBytes(graph.serialize(), 3, { quantization: 'f32' })!;
    expect(copy.search(new Float32Array([0, 0.1, 0.9]), 1)).toEqual({
      labels: [30],
      distances: [expect.any(Number)],
    });
    expect(() => annGraphFromBytes(graph.serialize(), 4, { quantization: 'f32' })).toThrow();
  });
});
