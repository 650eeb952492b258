import { migrateAll } from '../core/migrate.ts'
import { plugins } from './index.ts'

// `npm run migrate`.
await migrateAll(plugins)
