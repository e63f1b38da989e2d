/** The part of a pino logger Forge's layers log through (pino and Fastify's logger both fit). */
export interface StructuredLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}
