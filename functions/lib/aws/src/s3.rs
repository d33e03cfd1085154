//! Messages in S3, streamed in parts.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use mailbridge_core::ports::{BlobReader, BlobStore, BlobWriter};
use mailbridge_core::{Error, Result};

pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

/// S3's smallest part but the last: a writer holds at most about this much.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// A part and the piece that completes it, so that the buffer never grows by reallocation.
const PART_BUFFER: usize = PART_SIZE + 512 * 1024;

/// An object written as a multipart upload once it outgrows one part, else by one `PutObject`.
struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Writer {
    async fn upload_part(&mut self) -> Result<()> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(|e| sdk("S3 CreateMultipartUpload", e))?;
                let id = out
                    .upload_id
                    .ok_or_else(|| Error::storage("S3 gave no upload id"))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buf, BytesMut::with_capacity(PART_BUFFER)).freeze();
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk("S3 UploadPart", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, piece: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&piece);
        if self.buf.len() >= PART_SIZE {
            self.upload_part().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.upload_id.is_none() {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .body(ByteStream::from(self.buf.split().freeze()))
                .send()
                .await
                .map_err(|e| sdk("S3 PutObject", e))?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.upload_part().await?;
        }
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_upload_id(self.upload_id.clone())
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| sdk("S3 CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        if let Some(id) = &self.upload_id {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
            if let Err(e) = aborted {
                // What is left is expired by the bucket's lifecycle rule (template.yaml).
                tracing::warn!(error = %sdk("S3 AbortMultipartUpload", e), "a partial upload is left for the bucket's lifecycle rule");
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn create(&self, key: &str, content_type: &str) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.into(),
            content_type: content_type.into(),
            buf: BytesMut::with_capacity(PART_BUFFER),
            upload_id: None,
            parts: Vec::new(),
        }))
    }

    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// Reading messages back: the consuming application's side and the tests; no function does.
#[async_trait]
impl BlobReader for S3BlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let data = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::storage(format!("S3 body: {e}")))?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk("S3 GetObject", e)),
        }
    }
}
