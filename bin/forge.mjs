#!/usr/bin/env node
// The `forge` command. Forge ships as TypeScript and runs through tsx's loader, so `npx forge`,
// `npm start` and a global install all run the same source with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/bin/forge.ts');
