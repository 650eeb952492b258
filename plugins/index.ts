import type { FeatureModule } from '../core/features.ts'
import * as phone from './phone/index.ts'
import * as ownership from './ownership/index.ts'
import * as sessionPool from './session-pool/index.ts'
import * as rateLimit from './rate-limit/index.ts'
import * as reactions from './reactions/index.ts'
import * as metrics from './metrics/index.ts'

/** Every feature plugin; the core orders them by their declared dependencies and skips disabled ones. */
export const features: FeatureModule[] = [phone, ownership, sessionPool, rateLimit, reactions, metrics]
