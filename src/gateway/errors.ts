/** The error body of every endpoint, OpenAI-shaped so one client parser handles all of them. */
export interface ApiErrorBody {
  error: { message: string; type: string; code: string }
}

export function apiError(message: string, type: string, code: string): ApiErrorBody {
  return { error: { message, type, code } }
}
