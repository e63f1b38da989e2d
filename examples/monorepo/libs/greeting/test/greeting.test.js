import { test } from 'node:test';
import assert from 'node:assert/strict';
import { joinNames, languages, salute } from '../src/index.js';

test('joinNames joins with commas and a final "and"', () => {
  assert.equal(joinNames([]), '');
  assert.equal(joinNames(['Ada']), 'Ada');
  assert.equal(joinNames(['Ada', 'Grace']), 'Ada and Grace');
  assert.equal(joinNames(['Ada', ' ', 'Grace', 'Linus']), 'Ada, Grace and Linus');
  assert.equal(joinNames(['Ada', 'Grace'], 'es'), 'Ada y Grace');
});

test('salute greets one name, several, or the world', () => {
  assert.equal(salute('Ada'), 'Hello, Ada!');
  assert.equal(salute(['Ada', 'Grace'], 'fr'), 'Bonjour, Ada et Grace!');
  assert.equal(salute([], 'de'), 'Hallo, world!');
  assert.equal(salute(), 'Hello, world!');
});

test('language tags use their base language', () => {
  assert.equal(salute('Zoë', 'fr-CA'), 'Bonjour, Zoë!');
  assert.equal(salute('Ana', 'ES_mx'), 'Hola, Ana!');
});

test('unknown languages are refused, naming the supported ones', () => {
  assert.deepEqual(languages, ['de', 'en', 'es', 'fr']);
  assert.throws(() => salute('Ada', 'xx'), { name: 'RangeError', message: /supported: de, en, es, fr/ });
});
