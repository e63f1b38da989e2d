// Placeholder replaced once the store exists: prepares shared fixtures before test files run.
export default async function setup(): Promise<void> {}
