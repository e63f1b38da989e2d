// Salutations in a few languages, and English-style lists of names ("Ada, Grace and Linus").

const SALUTATIONS = {
  en: { hello: 'Hello', and: 'and' },
  de: { hello: 'Hallo', and: 'und' },
  es: { hello: 'Hola', and: 'y' },
  fr: { hello: 'Bonjour', and: 'et' },
};

/** The languages `salute` knows, sorted. */
export const languages = Object.freeze(Object.keys(SALUTATIONS).sort());

/** "Ada", "Ada and Grace", "Ada, Grace and Linus" (with `and` in the given language). */
export function joinNames(names, lang = 'en') {
  const words = wordsFor(lang);
  const cleaned = names.map((n) => String(n).trim()).filter(Boolean);
  if (cleaned.length <= 1) return cleaned.join('');
  return `${cleaned.slice(0, -1).join(', ')} ${words.and} ${cleaned.at(-1)}`;
}

/** "Bonjour, Ada et Grace!"; with no names, greets the world. Language tags like "fr-CA" use "fr". */
export function salute(names = [], lang = 'en') {
  const list = joinNames(Array.isArray(names) ? names : [names], lang);
  return `${wordsFor(lang).hello}, ${list || 'world'}!`;
}

function wordsFor(lang) {
  const base = String(lang).toLowerCase().split(/[-_]/)[0];
  const words = SALUTATIONS[base];
  if (!words) throw new RangeError(`unsupported language "${lang}"; supported: ${languages.join(', ')}`);
  return words;
}
